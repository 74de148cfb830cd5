"""`emo-serve`: an HTTP service on Ray Serve for a model (toolkit/serve/).

Thin on purpose: the protocol is toolkit/serve/protocol.py, the application app.py, the
cluster and its shutdown server.py.
"""

from __future__ import annotations

from pathlib import Path

import click

from emo_toolkit.cli.models import ModelSpec, announce_window, warn_if_untrained
from emo_toolkit.cli.support import DEVICE, FiniteFloat, GuardedCommand, common_options, info
from emo_toolkit.runtime.audio import MAX_SECONDS
from emo_toolkit.runtime.errors import require_extra
from emo_toolkit.runtime.formats import RUNTIME_PRECISIONS, RUNTIMES
from emo_toolkit.runtime.windows import MIN_WINDOW_S
from emo_toolkit.serve.protocol import DEFAULT_MAX_BODY_MB, DEFAULT_MAX_DURATION_S, Limits


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                     "max_content_width": 100})
@common_options
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="the address to listen on (0.0.0.0: every interface)")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--address", default=None,
              help="join a running Ray cluster (`ray start --head`'s address, or auto) "
                   "[default: start a local single-node cluster, stopped on exit]")
@click.option("--num-cpus", type=click.IntRange(1, 4096), default=None,
              help="the local cluster's CPUs [default: the machine's]")
@click.option("--replicas", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="copies of the model, each in its own process")
@click.option("--cpus-per-replica", type=FiniteFloat(0.0, 1024.0), default=1.0,
              show_default=True, help="CPUs Ray reserves for each replica")
@click.option("--gpus-per-replica", type=FiniteFloat(0.0, 64.0), default=0.0,
              show_default=True, help="GPUs Ray reserves for each replica (with --device cuda)")
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="each replica's runtime threads [default: the runtime's, every core it sees]")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="cpu or cuda[:N]")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
              help="what runs the artifact, as emo-predict --runtime")
@click.option("--precision", type=click.Choice(RUNTIME_PRECISIONS), default=None,
              help="what to compute in, as emo-predict --precision")
@click.option("--split", default=None, help="run directories only: which split's head")
@click.option("--max-batch-size", type=click.IntRange(1, 256), default=8, show_default=True,
              help="segments of concurrent requests run together, up to this many (equal "
                   "lengths only, unless the graph takes lengths: see emo-predict "
                   "--batch-size)")
@click.option("--batch-wait-ms", type=FiniteFloat(0.0, 10_000.0), default=5.0,
              show_default=True, help="how long a batch waits to fill")
@click.option("--window", type=FiniteFloat(MIN_WINDOW_S, MAX_SECONDS), default=None,
              help="longest segment in seconds (a request may ask another with ?window=); "
                   "default: the 90th percentile of the training clips' durations, which the "
                   "artifact records (10 s for artifacts that record none)")
@click.option("--max-body-mb", type=FiniteFloat(0.001, 4096.0), default=DEFAULT_MAX_BODY_MB,
              show_default=True, help="largest request body; larger ones get 413")
@click.option("--max-duration", type=FiniteFloat(1.0, 86_400.0),
              default=DEFAULT_MAX_DURATION_S, show_default=True,
              help="longest recording a request may hold, in seconds; longer ones get 422")
@click.option("--request-timeout", type=FiniteFloat(0.1, 86_400.0), default=60.0,
              show_default=True, help="seconds a request may take; later ones get 408")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Ray's Prometheus exporter on the local cluster [default: a free port, "
                   "printed when ready]")
def main(model: Path, host: str, port: int, address: str | None, num_cpus: int | None,
         replicas: int, cpus_per_replica: float, gpus_per_replica: float,
         threads: int | None, device: str, runtime: str | None, precision: str | None,
         split: str | None, max_batch_size: int, batch_wait_ms: float, window: float | None,
         max_body_mb: float, max_duration: float, request_timeout: float,
         metrics_port: int | None) -> None:
    """Serve MODEL over HTTP on Ray Serve: an exported artifact, a run directory (needs the
    [train] extra) or emo-bench's choice.json. Needs the [serve] extra.

    POST audio (WAV, FLAC, Ogg, MP3) or raw float32 samples to /predict and get
    emo-predict's row back as JSON; GET /healthz, /readyz and /info. Segments of concurrent
    requests are batched. Bad audio gets a 4xx status with the runtime's reason code.
    See docs/serving.md. Ctrl-C or SIGTERM stops the service and the cluster it started.
    """
    require_extra("ray", "serve", "emo-serve")
    if address is not None and (num_cpus or metrics_port):
        raise click.UsageError("--num-cpus and --metrics-port are for the local cluster; "
                               "a cluster joined with --address has its own")
    from emo_toolkit.serve.app import ServeOptions
    from emo_toolkit.serve.server import Cluster, Endpoint, Started, serve_until_stopped

    spec = ModelSpec.resolve(model, split, device, runtime, precision, threads)
    recognizer = spec.open()  # here first: a model that cannot be opened is one line
    said = spec.computed_precision(recognizer) is not None
    warn_if_untrained(recognizer)
    resolved = announce_window(recognizer, window)
    del recognizer
    options = ServeOptions(replicas, cpus_per_replica, gpus_per_replica, max_batch_size,
                           batch_wait_ms, resolved,
                           Limits(int(max_body_mb * 1e6), max_duration), precision_said=said)
    info(f"starting {replicas} replica(s) of {spec.path.name} on "
         f"{'the Ray cluster at ' + address if address else 'a local Ray cluster'}")

    def ready(started: Started) -> None:
        metrics = f"; metrics {started.metrics}" if started.metrics else ""
        click.echo(f"emo-serve: ready at {started.url} (Ray cluster {started.cluster}"
                   f"{metrics})", err=True)

    signal_name = serve_until_stopped(
        spec.open, options, Endpoint(host, port, request_timeout),
        Cluster(address, num_cpus, metrics_port), ready,
        lambda name: info(f"emo-serve: stopping ({name})"))
    click.echo(f"emo-serve: stopped ({signal_name})", err=True)
