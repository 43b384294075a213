"""The engine's defaults and choices that the command line offers (kept apart from the engine, which needs
torch and pandas, so that ``wrobust sweep --help`` starts without them)."""

DEFAULT_DISTORTIONS = ("addnorm", "multunif", "power", "sign", "round")  # the paper's test-time set
PRECISIONS = ("fp32", "tf32", "bf16")  # --precision (engine.precision)
DEFAULT_PRECISION = "fp32"
AUTO = "auto"  # --trials auto, --batch-size auto
MIN_TRIALS = 3  # --trials auto: trials of a random point before its interval is judged (engine.trials)
DEFAULT_CI_WIDTH = 2.0  # --ci-width: percentage points for fractions, else the metric's unit
DEFAULT_MAX_TRIALS = 30  # --max-trials
TRIALS_CAP = 10_000  # --trials N, --max-trials M: at most this (the interval shrinks as 1/sqrt(N); more is a typo)
CPU_BATCH = 1024  # --batch-size auto on the CPU and MPS (engine.batchsize)
AUTO_CAP = 4096  # --batch-size auto on a GPU: at most this many inputs per batch
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:\d+)?"  # --device (checked against the machine when used)
SPLITS = ("test", "train", "all")  # --split
IMAGE_MODES = ("L", "RGB")  # --image-mode
NORMALIZE = ("auto", "none")  # --normalize
POOLS = ("mean", "cls", "none")  # --pool
REDRAW_MODES = ("point", "batch")  # --redraw (engine.weights.redraw)
CONVERTER_RANGES = ("static", "dynamic")  # --dac-range (engine.passes.converters)
CONVERTERS_APPLY = ("all", "distorted-only")  # --converters
PRISTINE_MODES = ("device", "host", "none")  # --pristine: where the clean weights live (engine.weights.pristine)
DATA_ON = ("device", "host")  # --data-on: where the evaluation set lives (engine.passes.batches)


def too_many_trials(flag: str, n: int) -> str:
    """The message for a trial count above :data:`TRIALS_CAP` (the same words from the command line and the API)."""
    return (f"{flag} {n} is more than {TRIALS_CAP:,} trials per point, which would run for days (the 95% interval "
            f"shrinks only as 1/sqrt(trials); --trials auto stops when it is narrow enough)")
