"""How emo-serve runs, one dataclass per concern: the application (replicas, batching,
limits), where it listens and which Ray cluster it joins. emo-serve's options are made
from these fields (emo_toolkit.cli.support.dataclass_options). No Ray here: `emo-serve
--help` loads none."""

from __future__ import annotations

from dataclasses import dataclass, field

from emo_toolkit.runtime.settings import setting
from emo_toolkit.runtime.windows import Window
from emo_toolkit.serve.protocol import Limits


@dataclass(frozen=True)
class ServeOptions:
    """How the application runs: replicas and their resources, batching, limits."""

    replicas: int = setting(1, "copies of the model, each in its own process", range=(1, 1024))
    cpus_per_replica: float = setting(1.0, "CPUs Ray reserves for each replica",
                                      range=(0.0, 1024.0))
    gpus_per_replica: float = setting(0.0, "GPUs Ray reserves for each replica (with --device "
                                      "cuda)", range=(0.0, 64.0))
    max_batch_size: int = setting(8, "segments of concurrent requests run together, up to this "
                                  "many (equal lengths only, unless the graph takes lengths: "
                                  "see emo-predict --batch-size)", range=(1, 256))
    batch_wait_ms: float = setting(5.0, "how long a batch waits to fill",
                                   range=(0.0, 10_000.0))
    window: Window | None = None        # the longest segment, resolved by the command
                                        # (announce_window); None: the model's default
    limits: Limits = field(default_factory=Limits)
    retries: int = 3                    # resends of a segment whose replica died
    precision_said: bool = False        # rows end with "precision" (a run-time precision)


@dataclass(frozen=True)
class Cluster:
    """Where the application runs: `address` None starts a local cluster with `num_cpus`
    (None: what the machine has; its GPUs are found by Ray) and Ray's Prometheus exporter
    on `metrics_port` (None: a free port Ray picks)."""

    address: str | None = setting(None, "join a running Ray cluster (`ray start --head`'s "
                                  "address, or auto) [default: start a local single-node "
                                  "cluster, stopped on exit]")
    num_cpus: int | None = setting(None, "the local cluster's CPUs [default: the machine's]",
                                   range=(1, 4096))
    metrics_port: int | None = setting(None, "Ray's Prometheus exporter on the local cluster "
                                       "[default: a free port, printed when ready]",
                                       range=(1, 65535))


@dataclass(frozen=True)
class Endpoint:
    """Where the service listens."""

    host: str = setting("127.0.0.1", "the address to listen on (0.0.0.0: every interface)")
    port: int = setting(8000, "the port to listen on", range=(1, 65535))
    request_timeout_s: float = setting(60.0, "seconds a request may take; later ones get 408",
                                       option="request_timeout", range=(0.1, 86_400.0))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
