"""Starting and stopping emo-serve: a local single-node Ray cluster (or an existing one at
`address`), the application on Ray Serve's HTTP proxy, and a clean shutdown on Ctrl-C or
SIGTERM (the application is deleted; a cluster started here is stopped)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from emo_toolkit.runtime.live import stop_on_signals
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.serve.app import APP_NAME, build_app
from emo_toolkit.serve.options import Cluster, Endpoint, ServeOptions


@dataclass(frozen=True)
class Started:
    """What the ready line tells: the service's URL, the cluster's address, the metrics."""

    url: str
    cluster: str
    metrics: str | None


def serve_until_stopped(open_model: Callable[[], Recognizer], options: ServeOptions,
                        endpoint: Endpoint, cluster: Cluster,
                        on_ready: Callable[[Started], None],
                        on_stopping: Callable[[str], None] = lambda _: None) -> str:
    """Run the service until SIGINT or SIGTERM; the signal's name. `on_ready` hears where
    it runs, `on_stopping` the signal, before the shutdown (which takes seconds)."""
    import ray
    from ray import serve

    own_cluster = cluster.address is None
    context = ray.init(address=cluster.address, num_cpus=cluster.num_cpus if own_cluster
                       else None,
                       include_dashboard=False, logging_level=logging.WARNING,
                       log_to_driver=False, configure_logging=True,
                       **({"_metrics_export_port": cluster.metrics_port}
                          if own_cluster and cluster.metrics_port else {}))
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # its INFO lines are Ray's
    stop = threading.Event()
    try:
        with stop_on_signals(stop) as stopped_by:  # after ray.init, which sets its own
            serve.start(proxy_location="HeadOnly",  # one address for clients: the head's
                        http_options={"host": endpoint.host, "port": endpoint.port,
                                      "request_timeout_s": endpoint.request_timeout_s},
                        logging_config={"log_level": "WARNING"})
            serve.run(build_app(open_model, options), name=APP_NAME, route_prefix="/",
                      logging_config={"log_level": "WARNING"})
            metrics = ray.nodes()[0].get("MetricsExportPort") if own_cluster else None
            on_ready(Started(endpoint.url, context.address_info.get("gcs_address", ""),
                             f"http://{endpoint.host}:{metrics}/metrics" if metrics else None))
            while not stop.wait(0.5):
                pass
        on_stopping(stopped_by[0])
        return stopped_by[0]
    finally:
        try:
            if own_cluster:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)
        finally:
            ray.shutdown()
