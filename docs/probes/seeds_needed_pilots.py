"""How much "seeds needed" moves between 3-seed pilots: a priori (1 pp, pooled sd) against post hoc (observed Δ).

200 pilots of a 4-arm one_out ablation, 3 seeds, every arm's true Δ 1 pp, sd of paired differences 1 pp,
Holm's strictest level 0.05 / 4. Both rules use the same simulated power (reports.power.seeds_needed);
they differ only in what they feed it. Run: PYTHONPATH=. python docs/probes/seeds_needed_pilots.py
"""

import numpy as np

from reports import power

ALPHA = 0.05 / 4
rng = np.random.default_rng(1)
a_priori, post_hoc = [], []
for _ in range(200):
    d = rng.normal(0.01, 0.01, size=(4, 3))
    a_priori.append(power.seeds_needed(0.01, power.pooled_sd(d), ALPHA))
    post_hoc.append(power.seeds_needed(d[0].mean(), d[0].std(ddof=1), ALPHA))
for name, x in (("a priori: 1 pp, pooled sd", a_priori), ("post hoc: arm's own Δ and sd", post_hoc)):
    x = np.array(x)
    print(f"{name}: median {np.median(x):.0f}, 5-95% {np.percentile(x, 5):.0f} to {np.percentile(x, 95):.0f}")
print("with the true sd:", power.seeds_needed(0.01, 0.01, ALPHA))
