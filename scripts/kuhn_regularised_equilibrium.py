"""Where KL-regularised self-play settles in Kuhn Poker, computed exactly (no model): docs/results.md.

For each coefficient α, iterates a damped fixed point in which every information set plays the regularised
best response to its action values under the current policy (OpenSpiel's tree walk), and prints that fixed point's
exploitability. Two regularisers toward a reference policy u (uniform unless `--reference` is given):
- `forward`: the gradient that `algo.kl_estimator: k3` gives on sampled moves, Σ_a (π(a) − u(a)) ∇log π(a), which
  is the gradient of KL(u ‖ π); its regularised best response is π(a) = α·u(a) / (λ − Q(a)), λ normalising.
- `reverse`: KL(π ‖ u) (`algo.kl_estimator: exact`, or the entropy bonus toward uniform); π ∝ u·exp(Q / α).
`--reference RUN_DIR` takes u from the run's first read-out (the `eval/kuhn_poker/policy/<key>/<move>` metrics of
step 0 in RUN_DIR/metrics.jsonl): the policy a run's KL anchors to when it starts from a warm-start.
`--tied` instead searches the best policy that plays both seats alike at the same card and decision (what the
tiny model does), for the lowest exploitability such a policy can reach.

Run: python scripts/kuhn_regularised_equilibrium.py [--reference RUN_DIR] [--tied]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import action_value, exploitability


def regularised_response(q: np.ndarray, u: np.ndarray, alpha: float, kind: str) -> np.ndarray:
    """The regularised best response over the legal actions' values `q`, toward the reference probabilities `u`."""
    if kind == "reverse":
        z = u * np.exp((q - q.max()) / alpha)
        return z / z.sum()
    lo, hi = q.max(), q.max() + alpha + 1.0  # λ > max Q; at λ = max Q + α the masses sum to at most 1
    for _ in range(100):
        lam = (lo + hi) / 2
        lo, hi = (lam, hi) if (alpha * u / (lam - q)).sum() > 1 else (lo, lam)
    p = alpha * u / (hi - q)
    return p / p.sum()


def settle(game: pyspiel.Game, alpha: float, kind: str, reference: policy_lib.TabularPolicy | None = None,
           iterations: int = 1500, damping: float = 0.05) -> float:
    """Exploitability of the damped fixed point of regularised best responses (both seats share the table)."""
    table = policy_lib.TabularPolicy(game)
    u_all = (table if reference is None else reference).action_probability_array.copy()  # a fresh table is uniform
    walker = action_value.TreeWalkCalculator(game)
    legal = table.legal_actions_mask.astype(bool)
    for _ in range(iterations):
        q = np.asarray(walker([table, table], table).action_values)
        target = np.zeros_like(table.action_probability_array)
        for i in range(len(q)):
            target[i, legal[i]] = regularised_response(q[i, legal[i]], u_all[i, legal[i]], alpha, kind)
        table.action_probability_array = (1 - damping) * table.action_probability_array + damping * target
    return exploitability.exploitability(game, table)


def reference_from_run(run_dir: Path, game: pyspiel.Game) -> policy_lib.TabularPolicy:
    """The policy of a run's step-0 read-out, as a table (every move gets at least 1% so the KL stays finite)."""
    from spiral.eval.exploitability import kuhn_target
    from spiral.eval.report import read_metrics

    first = next((row for row in read_metrics(run_dir / "metrics.jsonl") if row["step"] == 0), None)
    if first is None or not any(k.startswith("eval/kuhn_poker/policy/") for k in first):
        raise SystemExit(f"{run_dir}/metrics.jsonl has no step-0 eval/kuhn_poker/policy/* metrics (eval.exploitability)")
    action_ids = kuhn_target().action_ids  # information set → {spiral move: OpenSpiel action id}
    table = policy_lib.TabularPolicy(game)
    for key, i in table.state_lookup.items():
        row = table.action_probability_array[i]
        for move, action in action_ids[key].items():
            row[action] = max(first[f"eval/kuhn_poker/policy/{key}/{move}"], 0.01)
        row /= row.sum()
    return table


def best_tied(game: pyspiel.Game, starts: int = 30) -> tuple[float, np.ndarray]:
    """The lowest exploitability of a policy with one bet and one call probability per card, both seats alike."""
    from scipy.optimize import minimize

    table = policy_lib.TabularPolicy(game)

    def exploitability_of(x: np.ndarray) -> float:
        x = np.clip(x, 0.0, 1.0)  # [J bet, J call, Q bet, Q call, K bet, K call]
        for key, i in table.state_lookup.items():
            card, history = int(key[0]), key[1:]
            p = x[2 * card] if history in ("", "p") else x[2 * card + 1]  # opening or answering a bet
            table.action_probability_array[i] = [1.0 - p, p]  # action 0 passes (check/fold), 1 bets or calls
        return exploitability.exploitability(game, table)

    rng = np.random.default_rng(0)
    best = min((minimize(exploitability_of, rng.random(6), method="Nelder-Mead",
                         options={"maxiter": 3000, "xatol": 1e-6, "fatol": 1e-8}) for _ in range(starts)),
               key=lambda r: r.fun)
    return float(best.fun), np.clip(best.x, 0.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tied", action="store_true", help="search the best seat-blind policy instead")
    parser.add_argument("--reference", type=Path, metavar="RUN_DIR",
                        help="anchor to this run's step-0 read-out instead of the uniform policy")
    args = parser.parse_args()
    game = pyspiel.load_game("kuhn_poker")
    if args.tied:
        value, x = best_tied(game)
        print(f"best tied policy: exploitability {value:.4f} (J bet/call, Q bet/call, K bet/call = {np.round(x, 3)})")
        return
    reference = reference_from_run(args.reference, game) if args.reference else None
    name = f"{args.reference}'s step 0" if args.reference else "uniform"
    if reference is not None:
        print(f"reference ({name}): exploitability {exploitability.exploitability(game, reference):.4f}")
    for kind in ("forward", "reverse"):
        for alpha in (0.05, 0.1, 0.2):
            value = settle(game, alpha, kind, reference)
            print(f"{kind} KL to {name}, alpha {alpha}: exploitability {value:.4f}", flush=True)


if __name__ == "__main__":
    main()
