"""``experiment-hook plan --mde PCT [--cv X | --from EXP] [--alpha A] [--power P]``: units per arm needed."""

from __future__ import annotations

import math

import click

from experiment_core.evidence import stats


def plan_line(n: int, *, mde: float, cv: float, alpha: float, power: float, source: str = "") -> str:
    src = f" ({source})" if source else ""
    return (
        f"{n} trials per arm ({2 * n} in all) to detect a {mde:g} % change at CV {cv:.3g}{src}, "
        f"alpha {alpha:g}, power {100 * power:.0f} % (two-sided two-sample t-test)"
    )


def cv_from_experiment(exp_id: str) -> tuple[float, float, str]:
    """(CV, the experiment's alpha, a description) from the per-unit values of an experiment's primary metric.

    The CV is the control arm's sd/mean when it has ≥ 2 units, else that of both arms together. This is the
    only function that touches the repository (registry and ledger); it imports them lazily.
    """
    from experiment_core.gitio import Git  # type: ignore[import-not-found,unused-ignore]
    from experiment_core.state import state_dir  # type: ignore[import-not-found,unused-ignore]
    from experiment_core.store import ledger_index  # type: ignore[attr-defined,unused-ignore]
    from experiment_core.store.spec import load_registry  # type: ignore[import-not-found,unused-ignore]

    git = Git.discover()
    exp = load_registry(git.root, state_dir(git)).get(exp_id)
    units = ledger_index.read_with(git, lambda index: index.units(exp.id, exp.metric.name), progress=True)
    values, arm = units.control, "control"
    if len(values) < 2:
        values, arm = units.control + units.treatment, "both arms"
    summary = stats.summarize(values)
    if summary.mean is None or summary.std is None or summary.mean == 0:
        raise click.ClickException(
            f"{exp_id}: not enough {exp.metric.name} values to estimate the CV ({len(values)} units); "
            "give --cv instead"
        )
    cv = summary.std / abs(summary.mean)
    return cv, float(exp.targets.alpha), f"measured on {summary.n} {arm} units of {exp_id}"


@click.command("plan")
@click.option(
    "--mde",
    type=float,
    required=True,
    metavar="PCT",
    help="Minimum detectable effect: the relative change to detect, in %.",
)
@click.option(
    "--cv",
    type=float,
    default=None,
    metavar="X",
    help="Coefficient of variation (sd / mean) of the metric, e.g. 0.2.",
)
@click.option(
    "--from",
    "from_exp",
    default=None,
    metavar="EXP",
    help="Estimate the CV from experiment EXP's trials so far.",
)
@click.option("--alpha", type=float, default=None, help="Significance level (default 0.05, or EXP's).")
@click.option("--power", type=float, default=0.8, show_default=True, help="Probability of detecting the MDE.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the number of trials per arm.")
def plan(
    mde: float, cv: float | None, from_exp: str | None, alpha: float | None, power: float, quiet: bool
) -> None:
    """How many trials per arm an experiment needs (power analysis)."""
    if (cv is None) == (from_exp is None):
        raise click.UsageError("give exactly one of --cv X and --from EXP")
    source = ""
    if from_exp is not None:
        cv, exp_alpha, source = cv_from_experiment(from_exp)
        alpha = exp_alpha if alpha is None else alpha
    assert cv is not None
    alpha = 0.05 if alpha is None else alpha
    if not (mde > 0 and math.isfinite(mde)):
        raise click.BadParameter("must be a positive percentage", param_hint="--mde")
    if not (cv > 0 and math.isfinite(cv)):
        raise click.BadParameter("must be positive", param_hint="--cv")
    if not 0 < alpha < 1:
        raise click.BadParameter("must be between 0 and 1", param_hint="--alpha")
    if not 0 < power < 1:
        raise click.BadParameter("must be between 0 and 1", param_hint="--power")
    n = stats.sample_size_per_arm(mde, cv, alpha=alpha, power=power)
    click.echo(str(n) if quiet else plan_line(n, mde=mde, cv=cv, alpha=alpha, power=power, source=source))
