"""The metric cases of ``tests/test_metrics_more.py``, written once for Keras (``generate_metrics_more.py``) and
kerust: ``cases(keras)`` returns ``{case: (metric factory, data kind)}`` bound to the given module."""

from __future__ import annotations


def cases(keras):
    m, ops = keras.metrics, keras.ops

    def scaled_abs(y_true, y_pred, scale=1.0):
        return scale * ops.mean(ops.abs(y_true - y_pred), axis=-1)

    return {
        "mean": (lambda: m.Mean(), "values"),
        "sum": (lambda: m.Sum(), "values"),
        "wrapper_kwargs": (lambda: m.MeanMetricWrapper(scaled_abs, name="scaled_abs", scale=3.0), "reg"),
        "rmse": (lambda: m.RootMeanSquaredError(), "reg"),
        "r2": (lambda: m.R2Score(), "reg"),
        "r2_variance": (lambda: m.R2Score(class_aggregation="variance_weighted_average", name="r2v"), "reg"),
        "r2_raw": (lambda: m.R2Score(class_aggregation=None, name="r2raw"), "reg"),
        "r2_adjusted": (lambda: m.R2Score(num_regressors=2, name="r2adj"), "reg"),
        "f1_none": (lambda: m.F1Score(name="f1_none"), "onehot"),
        "f1_micro": (lambda: m.F1Score(average="micro", threshold=0.4, name="f1_micro"), "binary"),
        "f1_macro": (lambda: m.F1Score(average="macro", name="f1_macro"), "binary"),
        "fbeta_weighted": (lambda: m.FBetaScore(average="weighted", beta=2.0, threshold=0.5, name="fbw"), "binary"),
        "iou": (lambda: m.IoU(num_classes=3, target_class_ids=[0, 2], name="iou"), "sparse"),
        "mean_iou": (lambda: m.MeanIoU(num_classes=3, name="miou"), "sparse"),
        "mean_iou_ignore": (lambda: m.MeanIoU(num_classes=3, ignore_class=1, name="miou_ign"), "sparse"),
        "binary_iou": (lambda: m.BinaryIoU(target_class_ids=[1], threshold=0.4, name="biou"), "binary"),
        "onehot_iou": (lambda: m.OneHotIoU(num_classes=3, target_class_ids=[0, 1], name="ohiou"), "onehot"),
        "onehot_mean_iou": (lambda: m.OneHotMeanIoU(num_classes=3, name="ohmiou"), "onehot"),
        "precision_top_k": (lambda: m.Precision(top_k=2, name="p_top2"), "binary"),
        "precision_thresholds": (lambda: m.Precision(thresholds=[0.3, 0.6], name="p_thr"), "binary"),
        "precision_class_id": (lambda: m.Precision(class_id=2, thresholds=0.4, name="p_cls"), "binary"),
        "recall_top_k_class": (lambda: m.Recall(top_k=1, class_id=0, name="r_top1"), "binary"),
        "recall_thresholds": (lambda: m.Recall(thresholds=[0.2, 0.5, 0.7], name="r_thr"), "binary"),
        "precision_at_recall": (lambda: m.PrecisionAtRecall(0.5, num_thresholds=50, name="par"), "binary"),
        "recall_at_precision": (lambda: m.RecallAtPrecision(0.6, name="rap"), "binary"),
        "sens_at_spec": (lambda: m.SensitivityAtSpecificity(0.5, class_id=1, name="sas"), "binary"),
        "spec_at_sens": (lambda: m.SpecificityAtSensitivity(0.7, num_thresholds=1, name="sps"), "binary"),
        "auc_pr": (lambda: m.AUC(curve="PR", name="auc_pr"), "binary"),
        "auc_multi": (lambda: m.AUC(multi_label=True, name="auc_multi"), "binary"),
        "auc_multi_weights": (lambda: m.AUC(multi_label=True, num_labels=3, label_weights=[1.0, 2.0, 0.5],
                                            curve="PR", name="auc_mw"), "binary"),
        "auc_majoring": (lambda: m.AUC(summation_method="majoring", num_thresholds=30, name="auc_maj"), "binary"),
        "auc_minoring_pr": (lambda: m.AUC(curve="PR", summation_method="minoring", name="auc_min"), "binary"),
        "auc_prgain": (lambda: m.AUC(curve="PRGAIN", name="auc_prg"), "binary"),
        "auc_thresholds": (lambda: m.AUC(thresholds=[0.2, 0.4, 0.9], name="auc_thr"), "binary"),
        "mape": (lambda: m.MeanAbsolutePercentageError(), "reg"),
        "msle": (lambda: m.MeanSquaredLogarithmicError(), "binary"),
        "logcosh": (lambda: m.LogCoshError(), "reg"),
        "cosine": (lambda: m.CosineSimilarity(axis=-1), "reg"),
        "hinge": (lambda: m.Hinge(), "binary"),
        "squared_hinge": (lambda: m.SquaredHinge(), "binary"),
        "categorical_hinge": (lambda: m.CategoricalHinge(), "onehot"),
        "kld": (lambda: m.KLDivergence(), "onehot"),
        "poisson": (lambda: m.Poisson(), "binary"),
        "auc_logits": (lambda: m.AUC(from_logits=True, label_weights=[0.5, 1.0, 2.0], name="auc_lg"), "reg"),
    }


# the cases run in compile(metrics=[...]) on a 3-unit sigmoid model with 0/1 targets (scalar results)
COMPILED = ["wrapper_kwargs", "rmse", "r2", "r2_variance", "f1_micro", "f1_macro", "fbeta_weighted", "binary_iou",
            "onehot_iou", "onehot_mean_iou", "precision_top_k", "precision_class_id", "recall_top_k_class",
            "precision_at_recall", "recall_at_precision", "sens_at_spec", "spec_at_sens", "auc_pr", "auc_multi",
            "auc_multi_weights", "auc_majoring", "auc_minoring_pr", "auc_prgain", "auc_thresholds", "mape", "msle",
            "logcosh", "cosine", "hinge", "squared_hinge", "categorical_hinge", "kld", "poisson"]
