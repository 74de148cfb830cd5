"""`emo-serve`: an HTTP service on Ray Serve for a model (toolkit/serve/).

Thin on purpose: the protocol is toolkit/serve/protocol.py, the application app.py, the
cluster and its shutdown server.py; every option comes from the dataclass it sets
(serve/options.py, ModelSpec, WindowOption).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from emo_toolkit.cli.models import ModelSpec, WindowOption, announce_window, warn_if_untrained
from emo_toolkit.cli.support import (
    GuardedCommand,
    build,
    common_options,
    dataclass_options,
    info,
    take,
)
from emo_toolkit.runtime.errors import require_extra
from emo_toolkit.serve.options import Cluster, Endpoint, ServeOptions
from emo_toolkit.serve.protocol import Limits


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                     "max_content_width": 100})
@common_options
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@dataclass_options(Endpoint)
@dataclass_options(Cluster)
@dataclass_options(ServeOptions)
@dataclass_options(ModelSpec)
@dataclass_options(WindowOption)
@dataclass_options(Limits)
def main(model: Path, **options: Any) -> None:
    """Serve MODEL over HTTP on Ray Serve: an exported artifact, a run directory (needs the
    [train] extra) or emo-bench's choice.json. Needs the [serve] extra.

    POST audio (WAV, FLAC, Ogg, MP3) or raw float32 samples to /predict and get
    emo-predict's row back as JSON; GET /healthz, /readyz and /info. Segments of concurrent
    requests are batched. Bad audio gets a 4xx status with the runtime's reason code.
    See docs/serving.md. Ctrl-C or SIGTERM stops the service and the cluster it started.
    """
    require_extra("ray", "serve", "emo-serve")
    endpoint, cluster = build(Endpoint, options), build(Cluster, options)
    if cluster.address is not None and (cluster.num_cpus or cluster.metrics_port):
        raise click.UsageError("--num-cpus and --metrics-port are for the local cluster; "
                               "a cluster joined with --address has its own")
    from emo_toolkit.serve.server import Started, serve_until_stopped

    spec = ModelSpec.resolve(model, **take(ModelSpec, options))
    window = build(WindowOption, options).window
    serving = build(ServeOptions, options, limits=build(Limits, options))
    recognizer = spec.open()  # here first: a model that cannot be opened is one line
    said = spec.computed_precision(recognizer) is not None
    warn_if_untrained(recognizer)
    serving = replace(serving, window=announce_window(recognizer, window), precision_said=said)
    del recognizer
    info(f"starting {serving.replicas} replica(s) of {spec.path.name} on "
         f"{'the Ray cluster at ' + cluster.address if cluster.address else 'a local Ray cluster'}")

    def ready(started: Started) -> None:
        metrics = f"; metrics {started.metrics}" if started.metrics else ""
        click.echo(f"emo-serve: ready at {started.url} (Ray cluster {started.cluster}"
                   f"{metrics})", err=True)

    signal_name = serve_until_stopped(
        spec.open, serving, endpoint, cluster, ready,
        lambda name: info(f"emo-serve: stopping ({name})"))
    click.echo(f"emo-serve: stopped ({signal_name})", err=True)
