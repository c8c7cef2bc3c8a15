"""The defaults and limits that more than one entry point shows: one home for each.

Kept free of imports (no JAX, no numpy), like :mod:`jaxnn.names`, so that the ``jaxnn``
command can state them in its ``--help`` before JAX is imported. The functions name them in
their signatures (``epsilon: float = INIT_EPSILON``), so their help shows the values.
"""

ACTIVATION = "sigmoid"  # the course's hidden units
OUTPUT = "sigmoid"  # the course's output layer: K independent sigmoids
HIDDEN = (25,)  # the course's hidden layer: 25 units
LAM = 1.0  # the course's lambda: fit, the estimator, learning_curve, jaxnn train and sweep
METHOD = "L-BFGS-B"  # fit's, the estimator's and jaxnn train's training method
MANY_METHOD = "lbfgs"  # fit_many's and the sweeps' (and jaxnn sweep's) method
GRAD = "backprop"  # the hand-written backward pass, wherever a gradient is chosen
SEEDS = 3  # networks (initial seeds 0..2) per point of a sweep
MAXITER = 400  # fit's and jaxnn train's iterations (the course's fmincg run takes 50)
MANY_MAXITER = 100  # iterations of each network fit_many and the sweeps train
HELD_OUT = 0.2  # the share of the examples held out: train_test_split, the sweeps, the command
INIT_EPSILON = 0.12  # the course's randInitializeWeights: weights uniform in [-0.12, 0.12]
LBFGS_TOL = 1e-5  # fit(method="lbfgs") and fit_many's lbfgs stop when max |g| <= tol
GRADCHECK_EPS = 1e-4  # the course's computeNumericalGradient step: J(theta +- eps e_i)
GRADCHECK_TOL = 1e-9  # the course: a relative difference below 1e-9 means backprop is right
GRADCHECK_CHUNK = 256  # perturbations evaluated in one compiled batch by numerical_gradient
LEARNING_RATES = {"adam": 1e-3, "sgd": 0.1}  # adam/sgd without a learning_rate
STREAM_CHUNK = 10_000  # examples read from IDX files at a time (fit_stream, evaluate_stream)
LEARNING_CURVE_SIZES = (0.1, 0.25, 0.5, 1.0)  # learning_curve's training-set fractions
MAX_SEED = 2**63 - 1  # the largest seed: a JAX key and numpy's generators take 0..2**63 - 1
