"""``hvd.callbacks`` for Horovod Keras scripts: the distributed callbacks of minicnn.callbacks."""
from ..callbacks.broadcast_global_variables import BroadcastGlobalVariablesCallback
from ..callbacks.metric_average import MetricAverageCallback

__all__ = ["BroadcastGlobalVariablesCallback", "MetricAverageCallback"]
