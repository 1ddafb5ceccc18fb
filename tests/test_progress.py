"""The progress bars: one wrapper (``tracejit.progress``) over tqdm, used everywhere a bar is shown."""
import io
import pathlib

from tqdm import tqdm

from tracejit.progress import progress_bar

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tracejit"


def test_a_bar_is_tqdm_on_stderr_and_counts(capsys):
    with progress_bar(4, "epoch 1/1", unit="batch") as bar:
        assert isinstance(bar, tqdm)
        for _ in range(4):
            bar.update(1)
        bar.set_postfix_str("loss 0.1234")
    out, err = capsys.readouterr()
    assert out == "" and "epoch 1/1: 100%" in err and "4/4" in err and "loss 0.1234" in err


def test_a_disabled_bar_writes_nothing():
    stream = io.StringIO()
    with progress_bar(3, "quiet", enabled=False, stream=stream) as bar:
        bar.update(3)
    assert stream.getvalue() == ""


def test_no_other_progress_bar_is_drawn_by_hand():
    """Carriage-return redraws belong to tqdm: no module of the package writes its own."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert '"\\r' not in text and "'\\r" not in text, f"{path} draws its own progress bar"
