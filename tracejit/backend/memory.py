"""Memory planning: which arrays of a lowered program are temporaries, how long each lives,
and which workspace slot holds it.

Layer: backend, below ``lowering``. In: the arrays the lowering allocated (``Buffer``: name,
shape, dtype, the step that allocates it), the names of the arrays each step reads (the
lowering's records), the names that alias each array (reshapes of it), and the arrays the
program returns. Out: a ``MemoryPlan``, which ``codegen`` applies when it writes each
temporary's allocation.

- **Outputs** (arrays the program returns) are never placed in the workspace: the caller owns
  them. ``codegen`` turns them into parameters, which the runtime (``compiler.Outputs``) fills
  with new arrays, or, for large ones, with arrays recycled from earlier calls once nothing
  refers to them any more.
- **Temporaries** live in *slots* of one workspace: a flat ``uint8`` array the runtime
  allocates once per compiled program and passes in on every call. A temporary is a typed,
  reshaped view of the start of its slot (``c = ws[4096:8192].view(np.float32).reshape((32,
  32))``), so a call that hits the cache allocates nothing but its outputs (and the block
  counter of each parallel loop, see ``lowering.Lowering.parallel_loop``). Slots start at
  multiples of ``ALIGN`` bytes, so every view is as aligned as the workspace itself.
- **Liveness**: a temporary is live from the step (an equation's code) that allocates it to the
  last step that reads it or an alias of it, as the lowering recorded (a read through a view,
  a transpose or broadcast, is a read of its base). Steps run in program order with no loops
  between them, so the last step reading it is its last use.
- **Reuse**: temporaries are placed in allocation order; a slot is free again once the last use
  of everything in it lies in an *earlier* equation (an equation never writes a buffer that it
  is still reading). Among free slots the smallest one that fits is taken, else the largest one
  grows, else a new slot is opened: few slots, and the sum of slot sizes -- the peak
  temporary memory, ``MemoryPlan.temp_bytes`` -- stays close to the largest set of
  simultaneously live temporaries.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Buffer", "MemoryPlan", "plan_memory", "ALIGN"]

ALIGN = 64  # bytes: a cache line, and the widest vector load


@dataclass
class Buffer:
    """One array the generated program allocates."""

    name: str
    shape: tuple
    dtype: np.dtype
    init: str             # "empty", "zeros" or "full"
    fill: str | None      # the fill value's source text for "full"
    line: int             # index of its allocation line in the lowering's lines
    unit: int             # index of the equation (unit of code) that allocates it

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class MemoryPlan:
    """Where each temporary lives. ``slots[k]`` is the byte size of workspace slot ``k``
    (a multiple of ``ALIGN``); ``slot_of[name]`` the slot of temporary ``name``; ``live[name]``
    its (first, last) equation indices."""

    slots: list = field(default_factory=list)
    slot_of: dict = field(default_factory=dict)
    live: dict = field(default_factory=dict)
    temporaries: list = field(default_factory=list)   # Buffers placed in slots
    outputs: list = field(default_factory=list)       # Buffers returned (fresh per call)

    @property
    def temp_bytes(self) -> int:
        """Peak temporary memory: the workspace's total size."""
        return sum(self.slots)

    @property
    def offsets(self) -> list:
        """Byte offset of each slot in the workspace."""
        starts, at = [], 0
        for size in self.slots:
            starts.append(at)
            at += size
        return starts

    @property
    def unplanned_bytes(self) -> int:
        """What the temporaries would take with no reuse (one array each)."""
        return sum(b.nbytes for b in self.temporaries)


def last_uses(buffers, step_reads, aliases) -> dict:
    """``{buffer name: index of the last step that reads it or an alias of it}``.

    ``step_reads[u]`` holds the names of the arrays step ``u`` reads or writes (the lowering's
    records, ``lowering.Step.reads``); ``aliases[name]`` the other names the generated code
    gives the same memory."""
    last = {b.name: b.unit for b in buffers}
    owner = {}
    for b in buffers:
        for n in {b.name, *aliases.get(b.name, ())}:
            owner[n] = b.name
    for u, names in enumerate(step_reads):
        for name in names:
            b = owner.get(name)
            if b is not None and u > last[b]:
                last[b] = u
    return last


def plan_memory(buffers, step_reads, aliases, output_roots) -> MemoryPlan:
    """Place every buffer that is not an output (its name not in ``output_roots``) and not
    empty into a workspace slot, reusing slots whose occupants are dead (see the module
    docstring)."""
    plan = MemoryPlan()
    temps = []
    for b in buffers:
        if b.name in output_roots:
            plan.outputs.append(b)
        elif b.nbytes > 0:
            temps.append(b)
    last = last_uses(temps, step_reads, aliases)
    free_after = []  # per slot: the last unit that uses what it holds
    for b in sorted(temps, key=lambda b: b.line):
        plan.live[b.name] = (b.unit, last[b.name])
        free = [k for k, end in enumerate(free_after) if end < b.unit]
        fitting = [k for k in free if plan.slots[k] >= b.nbytes]
        size = -(-b.nbytes // ALIGN) * ALIGN
        if fitting:
            k = min(fitting, key=lambda k: plan.slots[k])
        elif free:
            k = max(free, key=lambda k: plan.slots[k])
            plan.slots[k] = size
        else:
            k = len(plan.slots)
            plan.slots.append(size)
            free_after.append(-1)
        free_after[k] = last[b.name]
        plan.slot_of[b.name] = k
        plan.temporaries.append(b)
    return plan
