"""``tracejit.flow``, the declarative front end: ops against NumPy and gradients against finite
differences in every mode, Variables, assign, group, initialisers, optimisers against
hand-written updates, the error messages, and agreement with the ``@tj.trace`` version of the
same model."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import tracejit as tj
import tracejit.flow as tf

MODES = ("eager", "graph", "compiled")
rng = np.random.default_rng(3)
X = rng.uniform(0.5, 2.0, (3, 4))
Y = rng.uniform(-1.0, 1.0, (3, 4))
M = rng.uniform(-1.0, 1.0, (4, 2))
IMG = rng.normal(size=(2, 2, 6, 6))

# name -> (tf program of placeholders a, b, NumPy reference on arrays a, b, the values fed)
OPS = {
    "arithmetic": (lambda a, b: (a + b, a - 2, 3 - a, a * b, a / b, 1.5 / a, a ** 2, 2 ** a, -a, abs(b)),
                   lambda a, b: (a + b, a - 2, 3 - a, a * b, a / b, 1.5 / a, a ** 2, 2 ** a, -a, np.abs(b)), (X, Y)),
    "broadcasting": (lambda a, b: (a + b[0], b[:, :1] * a), lambda a, b: (a + b[0], b[:, :1] * a), (X, Y)),
    "unary": (lambda a, b: (tf.exp(a), tf.log(a), tf.sqrt(a), tf.tanh(b), tf.sigmoid(b), tf.abs(b), tf.negative(a)),
              lambda a, b: (np.exp(a), np.log(a), np.sqrt(a), np.tanh(b), 1 / (1 + np.exp(-b)), np.abs(b), -a), (X, Y)),
    "matmul": (lambda a, b: tf.matmul(a, b), lambda a, b: a @ b, (X, M)),
    "reductions": (lambda a, b: (tf.reduce_sum(a), tf.reduce_sum(a, reduction_indices=[1]),
                                 tf.reduce_mean(a, axis=0, keepdims=True), tf.reduce_max(b, 1), tf.reduce_max(b)),
                   lambda a, b: (a.sum(), a.sum(axis=1), a.mean(axis=0, keepdims=True), b.max(axis=1), b.max()), (X, Y)),
    "argmax_equal_cast": (lambda a, b: (tf.argmax(a, 1), tf.equal(tf.argmax(a, 1), tf.argmax(b, 1)),
                                        tf.reduce_mean(tf.equal(tf.argmax(a, 1), tf.argmax(b, 1))),
                                        tf.cast(b, tf.int32), tf.cast(a > 1, tf.float32)),
                          lambda a, b: (a.argmax(1), a.argmax(1) == b.argmax(1), np.mean(a.argmax(1) == b.argmax(1)),
                                        b.astype(np.int32), (a > 1).astype(np.float32)), (X, Y)),
    "shapes": (lambda a, b: (tf.reshape(a, [2, -1]), tf.transpose(a), tf.transpose(a, [1, 0]),
                             tf.pad(a, dim=1, pad=2), tf.pad(a, dim=0, pad=-1), tf.zeros_like(a), tf.ones_like(b)),
               lambda a, b: (a.reshape(2, -1), a.T, a.T, np.pad(a, ((0, 0), (2, 2))), a[1:2], np.zeros_like(a),
                             np.ones_like(b)), (X, Y)),
    "nn": (lambda a, b: (tf.nn.softmax(a), tf.nn.relu(b), tf.nn.sigmoid(b), tf.nn.tanh(b), tf.nn.flatten_layer(a),
                         tf.nn.mean_sparse_softmax_cross_entropy_with_logits(a, tf.argmax(b, 1)),
                         tf.nn.softmax_cross_entropy_with_logits(a, tf.nn.softmax(b))),
           lambda a, b: (np.exp(a) / np.exp(a).sum(1, keepdims=True), np.maximum(b, 0), 1 / (1 + np.exp(-b)),
                         np.tanh(b), a, -np.mean(np.log(np.exp(a) / np.exp(a).sum(1, keepdims=True))[
                             np.arange(3), b.argmax(1)]),
                         -np.sum(np.exp(b) / np.exp(b).sum(1, keepdims=True)
                                 * np.log(np.exp(a) / np.exp(a).sum(1, keepdims=True)), axis=1)), (X, Y)),
    "numpy_on_tensors": (lambda a, b: (np.exp(a), np.maximum(a, b), np.sum(a, axis=0), a @ np.ones((4, 1))),
                         lambda a, b: (np.exp(a), np.maximum(a, b), a.sum(0), a @ np.ones((4, 1))), (X, Y)),
    "conv_pool": (lambda a, b: (tf.nn.max_pool(a, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1]),
                                tf.apply(tj.nn.conv2d, a, b[:3], stride=1, padding="SAME")),
                  lambda a, b: (a.reshape(2, 2, 3, 2, 3, 2).max(axis=(3, 5)), tj.nn.conv2d(a, b[:3], padding="SAME")),
                  (IMG, rng.normal(size=(4, 2, 3, 3)))),
}


def _feeds(values):
    holders = [tf.placeholder(tf.float64, v.shape) for v in values]
    return holders, dict(zip(holders, values))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_matches_numpy(name, mode):
    program, reference, values = OPS[name]
    holders, feed = _feeds(values)
    out = tf.Session(mode=mode).run(_as_list(program(*holders)), feed_dict=feed)
    expected = _as_list(reference(*values))
    assert len(out) == len(expected)
    for got, want in zip(out, expected):
        assert np.shape(got) == np.shape(want), name
        assert np.asarray(got).dtype == np.asarray(want).dtype, name
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


def _as_list(x):
    return list(x) if isinstance(x, tuple) else [x]


# name -> (differentiable tf function of one tensor, a point)
GRAD_OPS = {
    "arithmetic": (lambda a: (a * a - 3 * a) / (a + 1) + 2 ** a - abs(a) + a ** 3, X),
    "unary": (lambda a: tf.exp(a) + tf.log(a) + tf.sqrt(a) + tf.tanh(a) + tf.sigmoid(a), X),
    "matmul": (lambda a: tf.matmul(a, tf.constant(M)), X),
    "reductions": (lambda a: tf.reduce_sum(a, 1) + tf.reduce_mean(a, axis=1) + tf.reduce_max(a, 1), X),
    "shapes": (lambda a: tf.transpose(tf.reshape(tf.pad(tf.pad(a, dim=1, pad=1), dim=0, pad=-1), [3, 2])), X),
    "nn": (lambda a: tf.nn.softmax(a) + tf.nn.relu(a - 1) +
           tf.nn.mean_sparse_softmax_cross_entropy_with_logits(a, tf.constant([0.0, 3.0, 1.0])), Y),
    "conv_pool": (lambda a: tf.nn.max_pool(tf.tanh(tf.apply(tj.nn.conv2d, a, tf.constant(IMG[:, :, :3, :3]))),
                                           ksize=2, strides=1), IMG),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(GRAD_OPS))
def test_gradient_matches_finite_differences(name, mode):
    fn, point = GRAD_OPS[name]
    a = tf.placeholder(tf.float64, point.shape)
    weights = rng.normal(size=np.shape(tf.Session(mode="eager").run(fn(a), {a: point})))
    loss = tf.reduce_sum(fn(a) * tf.constant(weights))
    (grad,) = tf.gradients(loss, [a])
    sess = tf.Session(mode=mode)
    analytic = sess.run(grad, {a: point})
    direction = rng.normal(size=point.shape)
    eps = 1e-6
    plus, minus = (sess.run(loss, {a: point + s * eps * direction}) for s in (1, -1))
    np.testing.assert_allclose(np.sum(analytic * direction), (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_a_times_b_plus_3_is_a_small_graph():
    a, b = tf.placeholder(tf.float32), tf.placeholder(tf.float32)
    c = a * b + 3
    sess = tf.Session()
    feed = {a: np.float32([1, 2]), b: np.float32([3, 4])}
    np.testing.assert_array_equal(sess.run(c, feed), [6, 11])
    graph = sess.graph(c, feed, optimize=False)
    assert [e.prim.name for e in graph.eqns] == ["mul", "broadcast_to", "add"], sess.graph_text(c, feed)
    assert len(graph.inputs) == 2 and "mul" in sess.graph_text(c, feed)


@pytest.mark.parametrize("mode", MODES)
def test_variables_assign_group_and_initialisers(mode):
    v = tf.Variable(np.arange(3.0), name="v")
    w = tf.Variable(tf.ones([3]), name="w")
    sess = tf.Session(mode=mode)
    assert sess.run(tf.initialize_all_variables()) is None
    held = sess.values[v]
    # reads in a run see the values from before it; the assignment lands when the run ends
    new_v, old_v = sess.run([tf.assign(v, v + w), v])
    np.testing.assert_array_equal(new_v, [1, 2, 3])
    np.testing.assert_array_equal(old_v, [0, 1, 2])
    assert sess.values[v] is held and np.array_equal(held, [1, 2, 3])  # updated in place
    both = tf.group(tf.assign(v, v * 2), tf.assign(w, v))
    assert sess.run(both) is None
    np.testing.assert_array_equal(sess.run([v, w]), [[2, 4, 6], [1, 2, 3]])
    sess.run(tf.global_variables_initializer())
    np.testing.assert_array_equal(sess.run(v), [0, 1, 2])
    assert sess.run({"v": v, "pair": (w, [v])})["pair"][1][0].tolist() == [0, 1, 2]


def test_normal_draws_anew_on_every_run():
    sample = tf.normal([1000], stdev=2.0)
    sess = tf.Session(mode="compiled")
    first, second = sess.run(sample), sess.run(sample)
    assert not np.array_equal(first, second)
    assert 1.8 < np.std(first) < 2.2 and first.dtype == np.float32


def _quadratic():
    x = tf.placeholder(tf.float64, [None, 3], name="x")
    W = tf.Variable(np.array([[1.0], [-2.0], [0.5]]), name="W")
    loss = tf.reduce_mean((tf.matmul(x, W) - 1.0) ** 2)
    return x, W, loss


def _quadratic_grad(w, xs):
    return 2 * xs.T @ (xs @ w - 1.0) / len(xs)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_descent_matches_hand_written_update(mode):
    x, W, loss = _quadratic()
    step = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    sess = tf.Session(mode=mode)
    sess.run(tf.initialize_all_variables())
    xs = rng.normal(size=(5, 3))
    w = np.array([[1.0], [-2.0], [0.5]])
    sess.run([step, {"loss": loss}], {x: xs})
    w = w - 0.1 * _quadratic_grad(w, xs)
    gc.collect()
    gc.disable()  # a run leaves no reference cycles holding the fetched or fed arrays
    try:
        for _ in range(3):
            sess.run([step, {"loss": loss}], {x: xs})
            w = w - 0.1 * _quadratic_grad(w, xs)
        assert gc.collect() == 0
    finally:
        gc.enable()
    np.testing.assert_allclose(sess.run(W), w, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_adam_matches_hand_written_update(mode):
    x, W, loss = _quadratic()
    step = tf.train.AdamOptimizer(0.05, 0.8, 0.9, 1e-7).minimize(loss)
    sess = tf.Session(mode=mode)
    sess.run(tf.initialize_all_variables())
    xs = rng.normal(size=(5, 3))
    w, m, v = np.array([[1.0], [-2.0], [0.5]]), 0.0, 0.0
    for t in range(1, 4):
        sess.run(step, {x: xs})
        g = _quadratic_grad(w, xs)
        m, v = 0.8 * m + 0.2 * g, 0.9 * v + 0.1 * g * g
        w = w - 0.05 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-7 * np.sqrt(1 - 0.9 ** t) / np.sqrt(1 - 0.9 ** t))
    np.testing.assert_allclose(sess.run(W), w, rtol=1e-6)


def test_infer_variable_shapes_and_layers():
    x = tf.placeholder(tf.float32, [None, 1, 8, 8])
    conv = tf.nn.conv2d(x, num_filter=3, ksize=[1, 3, 3, 1], name="c")
    out = tf.nn.linear(tf.nn.flatten_layer(tf.nn.max_pool(conv, ksize=2)), num_hidden=4, name="fc")
    found = list(tf.infer_variable_shapes(out, feed_dict={x: (2, 1, 8, 8)}))
    assert [(name, shape) for _, name, shape in found] == [
        ("c_weight", (3, 1, 3, 3)), ("c_bias", (3,)), ("fc_weight", (27, 4)), ("fc_bias", (4,))]
    sess = tf.Session()
    sess.run(tf.initialize_all_variables())
    assert sess.run(out, {x: np.ones((5, 1, 8, 8), np.float32)}).shape == (5, 4)
    w = sess.values[found[0][0]]
    assert w.dtype == np.float32 and 0 < np.std(w) < 0.05  # N(0, 0.01^2)
    assert not sess.values[found[1][0]].any()  # biases start at zero


def test_runs_share_one_program_per_fetch_set_and_retrace_with_reasons():
    x, W, loss = _quadratic()
    sess = tf.Session(mode="compiled")
    sess.run(tf.initialize_all_variables())
    for n in (4, 4, 4):
        sess.run(loss, {x: np.ones((n, 3))})
    traced, call = next(iter(sess._programs.values()))
    assert traced.stats["traces"] == 1 and traced.stats["cache_hits"] == 2
    sess.run(loss, {x: np.ones((6, 3))})
    reason = traced.stats["retraces"][0]
    assert "f64[4,3] -> f64[6,3]" in reason and "'x'" in reason, reason


def test_feeds_are_converted_to_the_placeholder_dtype():
    x = tf.placeholder(tf.float32, [2])
    out = tf.Session().run(x * 2, {x: [1, 2]})
    assert out.dtype == np.float32 and out.tolist() == [2, 4]


def test_eval_uses_the_last_session():
    v = tf.Variable(np.float64(2.5))
    sess = tf.Session()
    sess.run(tf.initialize_all_variables())
    assert (v * 2).eval() == 5.0


def test_errors_name_the_problem_and_the_users_line():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    y = tf.placeholder(tf.int32, [2], name="y")
    v = tf.Variable(np.zeros(3, np.float32), name="v")
    sess = tf.Session()
    with pytest.raises(tf.FlowError, match=r"(?s)placeholder 'x'.*needs a value.*test_flow.py"):
        sess.run(x * 2)
    with pytest.raises(tf.FlowError, match=r"(?s)expected shape \[None, 3\], got \[2, 4\].*test_flow.py"):
        sess.run(x * 2, {x: np.zeros((2, 4))})
    with pytest.raises(tf.FlowError, match=r"(?s)placeholder 'y'.*expected dtype int32, got float64.*test_flow.py"):
        sess.run(y + 1, {y: np.zeros(2)})
    with pytest.raises(tf.FlowError, match=r"(?s)Variable 'v'.*before it has a value.*initialize_all_variables"):
        sess.run(v + 1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'axes'"):
        tf.reduce_sum(x, axes=[1])
    with pytest.raises(TypeError, match="fetch fetches\\[1\\] is a str"):
        sess.run([x, "x"], {x: np.zeros((1, 3))})
    bad = tf.matmul(x, tf.constant(np.ones((4, 2), np.float32)))
    with pytest.raises(Exception, match="matmul") as info:
        sess.run(bad, {x: np.zeros((1, 3))})
    assert any("test_flow.py" in note for note in getattr(info.value, "__notes__", []))


def test_flow_and_trace_softmax_regressions_give_the_same_losses():
    """The same model written declaratively and as ``@tj.trace`` NumPy, from the same start on
    the same batches: equal losses at every step."""
    data = np.random.default_rng(0)
    images = data.uniform(0, 0.05, (6, 20, 784)).astype(np.float32)
    labels = np.eye(10, dtype=np.float32)[data.integers(0, 10, (6, 20))]

    x = tf.placeholder(tf.float32, [None, 784])
    W = tf.Variable(tf.zeros([784, 10]))
    y_ = tf.placeholder(tf.float32, [None, 10])
    cross_entropy = tf.reduce_mean(-tf.reduce_sum(y_ * tf.log(tf.nn.softmax(tf.matmul(x, W))), reduction_indices=[1]))
    train_step = tf.train.GradientDescentOptimizer(0.5).minimize(cross_entropy)
    sess = tf.Session(mode="compiled")
    sess.run(tf.initialize_all_variables())

    def loss_fn(w, xs, ys):
        return np.mean(-np.sum(ys * np.log(tj.nn.softmax(xs @ w)), axis=1))

    @tj.trace
    def step(w, xs, ys):
        loss, g = tj.value_and_grad(loss_fn)(w, xs, ys)
        return w - 0.5 * g, loss

    w = np.zeros((784, 10), np.float32)
    for xs, ys in zip(images, labels):
        flow_loss, _ = sess.run([cross_entropy, train_step], {x: xs, y_: ys})
        w, trace_loss = step(w, xs, ys)
        assert flow_loss == trace_loss
    np.testing.assert_array_equal(sess.run(W), w)


def test_get_mnist_layout(tmp_path, monkeypatch):
    from tests.test_examples import write_tiny_data_set
    from tracejit import datasets
    monkeypatch.setitem(datasets.CHECKSUMS, "mnist", write_tiny_data_set(tmp_path / "mnist", seed=1))
    mnist = tf.datasets.get_mnist(path=tmp_path / "mnist")
    assert mnist.train.images.shape == (4096, 1, 28, 28) and mnist.train.labels.dtype == np.int64
    flat = tf.datasets.get_mnist(flatten=True, onehot=True, path=tmp_path / "mnist")
    images, labels = flat.train.next_batch(50)
    assert images.shape == (50, 784) and labels.shape == (50, 10) and labels.dtype == np.float32
    assert np.array_equal(labels.sum(axis=1), np.ones(50))
    again, _ = tf.datasets.get_mnist(flatten=True, onehot=True, path=tmp_path / "mnist").train.next_batch(50)
    assert np.array_equal(images, again)  # a fixed seed


@pytest.mark.parametrize("mode", ("eager", "compiled"))
def test_imperative_functions_take_tensors(mode):
    a = tf.placeholder(tf.float64, IMG.shape)
    w = tf.constant(rng.normal(size=(3, 2, 3, 3)))
    outs = [tj.nn.conv2d(a, w, padding="SAME"), tj.nn.max_pool2d(a, 2), tj.nn.relu(a), tj.nn.softmax(a),
            tj.stop_gradient(a) * a]
    assert all(isinstance(o, tf.Tensor) for o in outs)
    got = tf.Session(mode=mode).run(outs, {a: IMG})
    want = [tj.nn.conv2d(IMG, w.fn(), padding="SAME"), tj.nn.max_pool2d(IMG, 2), tj.nn.relu(IMG), tj.nn.softmax(IMG),
            IMG * IMG]
    for g, v in zip(got, want):
        np.testing.assert_allclose(g, v, rtol=1e-12)
    (grad,) = tf.gradients(tf.reduce_sum(tj.stop_gradient(a) * a), [a])
    np.testing.assert_allclose(tf.Session(mode=mode).run(grad, {a: IMG}), IMG)  # not 2 * IMG
