"""Central finite differences of a graph's scalar loss, the reference of the ops' gradient tests."""
import numpy as np


def central_differences(session, loss, holders, values, step=1e-2):
    """d loss / d values[k] by central differences, one element at a time, for each k.

    Args:
      session: a tf.Session of loss's graph.
      loss: scalar tensor.
      holders: the placeholders loss is fed through, in the order of values.
      values: NumPy arrays, one per holder (the point the derivative is taken at).
      step: half the difference's span.
    Returns:
      list of float64 arrays shaped like values.
    """
    feed = dict(zip(holders, values))
    gradients = []
    for holder, x in zip(holders, values):
        numeric = np.zeros(np.shape(x))
        for i in np.ndindex(numeric.shape):
            plus, minus = np.array(x, copy=True), np.array(x, copy=True)
            plus[i] += step
            minus[i] -= step
            numeric[i] = (session.run(loss, {**feed, holder: plus})
                          - session.run(loss, {**feed, holder: minus})) / (2 * step)
        gradients.append(numeric)
    return gradients
