"""What several commands print the same way: how the data was read, and the stopping check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # numpy loads only when a command needs it
    from ssvae.domain.data import DatasetInfo
    from ssvae.domain.stopping import StopDecision


def echo_dataset_lines(info: DatasetInfo) -> None:
    """Tell on stderr how the data was read, before a long run on it.

    Which files came from which folder when a --data-dir lacks some (quiet when all come
    from one place), and the dataset's notes (e.g. a tfidf width narrowed to a small file).
    """
    if len(info.sources) > 1:
        for source in info.sources:
            click.echo(f"data: {source}", err=True)
    for note in info.notes:
        click.echo(f"note: {note}", err=True)


def stopping_json(decision: StopDecision) -> dict[str, Any]:
    """A StoppingDecision for --json output."""
    return {
        "stop": decision.stop,
        "reasons": list(decision.reasons),
        "kappa": decision.kappa,
        "tau_change": decision.tau_change,
    }


def echo_stopping(decision: StopDecision, rounds: int) -> None:
    """Which stopping criteria hold, with the stability figures known so far."""
    kappa = "n/a" if decision.kappa is None else f"{decision.kappa:.4f}"
    tau = "n/a" if decision.tau_change is None else f"{decision.tau_change:.4g}"
    click.echo(f"stopping after {rounds} round(s): mean kappa {kappa}, tau change {tau}")
    if decision.reasons:
        for reason in decision.reasons:
            click.echo(f"  met: {reason}")
    else:
        click.echo("  no stopping criterion met")
