"""``keras.metrics.Metric`` subclasses written as Keras's guide writes them, shared by the Keras fixture script
(``generate_metrics.py``) and kerust's test (``tests/test_custom_metrics.py``): ``define(keras)`` returns the
classes bound to the given module (Keras or kerust), so both run exactly the same code."""

from __future__ import annotations


def define(keras):  # noqa: C901 - one closure per class keeps the classes bound to the given module
    ops = keras.ops

    class BinaryTruePositives(keras.metrics.Metric):
        """Keras's own example: the (weighted) count of true positives, predictions thresholded at 0.5."""

        def __init__(self, name="binary_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_true = ops.cast(y_true, "bool")
            y_pred = ops.greater(y_pred, 0.5)
            values = ops.logical_and(ops.equal(y_true, True), ops.equal(y_pred, True))
            values = ops.cast(values, self.dtype)
            if sample_weight is not None:
                sample_weight = ops.cast(sample_weight, self.dtype)
                sample_weight = ops.broadcast_to(sample_weight, ops.shape(values))
                values = ops.multiply(values, sample_weight)
            self.true_positives.assign(self.true_positives + ops.sum(values))

        def result(self):
            # Keras's example returns the variable itself, which Keras 3.15 on JAX refuses in `evaluate`
            return ops.convert_to_tensor(self.true_positives)

    class MeanAbsError(keras.metrics.Metric):
        """A mean kept as a total and a count (`ops.size`), divided without NaN."""

        def __init__(self, name="mean_abs_error", **kwargs):
            super().__init__(name=name, **kwargs)
            self.total = self.add_variable(shape=(), initializer="zeros", name="total")
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            err = ops.abs(ops.subtract(y_true, y_pred))
            self.total.assign_add(ops.sum(err))
            self.count.assign_add(ops.cast(ops.size(err), "float32"))

        def result(self):
            return ops.divide_no_nan(self.total, self.count)

    class ThresholdCounts(keras.metrics.Metric):
        """A vector state: how many predictions exceed each of three thresholds, and the mean of those rates."""

        def __init__(self, thresholds=(0.25, 0.5, 0.75), name="threshold_counts", **kwargs):
            super().__init__(name=name, **kwargs)
            self.thresholds = list(thresholds)
            self.above = self.add_variable(shape=(len(self.thresholds),), initializer="zeros", name="above")
            self.seen = self.add_variable(shape=(), initializer="zeros", dtype="int32", name="seen")

        def update_state(self, y_true, y_pred, sample_weight=None):
            t = ops.convert_to_tensor(self.thresholds)
            flat = ops.reshape(y_pred, (-1, 1))
            hits = ops.cast(ops.greater(flat, t), "float32")
            self.above.assign_add(ops.sum(hits, axis=0))
            self.seen.assign_add(ops.size(flat))

        def result(self):
            rates = self.above / ops.maximum(ops.cast(self.seen, "float32"), 1.0)
            return ops.mean(rates)

        def get_config(self):
            return {**super().get_config(), "thresholds": self.thresholds}

    class SumOfSquares(keras.metrics.Metric):
        def __init__(self, name="sum_of_squares", **kwargs):
            super().__init__(name=name, **kwargs)
            self.total = self.add_variable(shape=(), initializer="zeros", name="total")
            self.count = self.add_variable(shape=(), initializer="ones", name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(ops.sum(ops.square(y_true - y_pred)))
            self.count.assign_add(ops.cast(ops.size(y_true), "float32"))

        def result(self):
            return self.total / self.count

    class RootMeanSquare(keras.metrics.Metric):
        """A metric that holds another: its state is the inner metric's variables. The inner count starts at
        one (its initializer) but `reset_state` zeros it, as Keras's does."""

        def __init__(self, name="root_mean_square", **kwargs):
            super().__init__(name=name, **kwargs)
            self.inner = SumOfSquares()

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.inner.update_state(y_true, y_pred)

        def result(self):
            return ops.sqrt(self.inner.result())

        def reset_state(self):
            self.inner.reset_state()

    return {c.__name__: c for c in (BinaryTruePositives, MeanAbsError, ThresholdCounts, SumOfSquares,
                                    RootMeanSquare)}
