"""The reproduce grid's and the training's defaults and choices, as the command line offers them (kept apart
from the grid and the training, which need torch, so that ``wrobust reproduce --help`` starts without it)."""

# The paper's training rules; power and stochm are trained at one strength each (a rule carries its strength).
DEFAULT_RULES = ("none", "clip", "sign", "stoch", "power:beta=0.5", "stochm:gamma=0.5")
# Whole curves (each over its default grid): the paper's test-time distortions, then the bits sweeps of claim (e).
CURVES = ("sign", "round", "power", "addnorm", "multunif", "ternarize", "quantize")
# The table's columns: the strengths of the paper's figures.
PAPER_COLUMNS = ("sign", "round", "power:beta=0.5", "power:beta=0.25", "addnorm:sigma=0.1", "addnorm:sigma=0.3",
                 "multunif:gamma=0.5")
WITHIN = 2.0  # claim (e): a point counts when its error is at most WITHIN points above none's clean error
SEEDS, QUICK_SEEDS = 3, 2
TRIALS, QUICK_TRIALS = 5, 3

OPTIMIZERS = ("adam", "sgd")
INITS = ("uniform", "default")
SCHEDULES = ("constant", "cosine", "exp")
