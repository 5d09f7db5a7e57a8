#!/usr/bin/python3
"""Unit tests of scripts/experiment/stats.py on synthetic data with known answers
(ctest experiment_stats):  /usr/bin/python3 scripts/experiment/test_stats.py"""
import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats  # noqa: E402

DOMAINS = ("a", "b")


def synthetic(rng, seeds, windows, shift, seed_sd, window_sd):
    """fp per-window NLL, and per seed and source a model whose per-window NLL is
    fp + shift[source] * (1 + seed effect) + window noise (tokens 100 per window)."""
    tok = [100] * windows
    fp = {d: ([rng.uniform(300, 500) for _ in range(windows)], tok) for d in DOMAINS}
    by_seed = {}
    for s in range(seeds):
        models = {}
        for src, mean_shift in shift.items():
            seed_shift = mean_shift + rng.gauss(0, seed_sd)  # per seed: its calibration draw
            models[src] = {d: ([x + 100 * seed_shift + rng.gauss(0, window_sd) for x in fp[d][0]], tok)
                           for d in DOMAINS}
        by_seed[s] = models
    return fp, by_seed


class StatsTest(unittest.TestCase):
    def test_ppl_loss_by_hand(self):
        fp = {"a": ([10.0, 30.0], [10, 10]), "b": ([5.0], [5])}
        q = {"a": ([12.0, 30.0], [10, 10]), "b": ([5.5], [5])}
        want = 100 * ((math.exp(42 / 20 - 40 / 20) - 1) + (math.exp(5.5 / 5 - 1.0) - 1)) / 2
        self.assertAlmostEqual(stats.ppl_loss(fp, q), want, places=12)
        # Resampled windows: window 0 of "a" twice.
        want_idx = 100 * ((math.exp(24 / 20 - 20 / 20) - 1) + (math.exp(5.5 / 5 - 1.0) - 1)) / 2
        self.assertAlmostEqual(stats.ppl_loss(fp, q, {"a": [0, 0], "b": [0]}), want_idx, places=12)

    def test_sign_test_exact(self):
        self.assertAlmostEqual(stats.sign_test([1] * 8)[0], 2 / 256)
        self.assertAlmostEqual(stats.sign_test([1] * 7 + [-1])[0], 2 * 9 / 256)
        self.assertAlmostEqual(stats.sign_test([1, -1] * 4)[0], 1.0)
        self.assertEqual(stats.sign_test([1, 1, 0, -1]), (1.0, 2, 1))  # tie dropped: 2 vs 1
        self.assertEqual(stats.sign_test([0, 0])[0], 1.0)

    def test_holm_known_values(self):
        adj = stats.holm({"w": 0.01, "x": 0.04, "y": 0.03, "z": 0.005})
        # sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
        self.assertAlmostEqual(adj["z"], 0.02)
        self.assertAlmostEqual(adj["w"], 0.03)
        self.assertAlmostEqual(adj["y"], 0.06)
        self.assertAlmostEqual(adj["x"], 0.06)
        self.assertEqual(stats.holm({"a": 0.6, "b": 0.7}), {"a": 1.0, "b": 1.0})
        self.assertEqual(stats.holm({}), {})

    def test_percentile_interpolates(self):
        self.assertAlmostEqual(stats.percentile([0.0, 1.0, 2.0, 3.0, 4.0], 0.5), 2.0)
        self.assertAlmostEqual(stats.percentile([0.0, 10.0], 0.25), 2.5)

    def test_zero_gain_interval_contains_zero_most_of_the_time(self):
        # Source and original from the same distribution: the true delta is 0.
        rng = random.Random(1)
        contains, runs = 0, 40
        for r in range(runs):
            fp, by_seed = synthetic(rng, seeds=8, windows=24, shift={"original": 0.02, "faq": 0.02},
                                    seed_sd=0.005, window_sd=0.3)
            s = stats.cell_stats(fp, by_seed, ["original", "faq"], B=200, rng_seed=r)["faq"]
            contains += s["delta_ci"][0] <= 0 <= s["delta_ci"][1]
            self.assertEqual(s["excludes_0"], not (s["delta_ci"][0] <= 0 <= s["delta_ci"][1]))
        # Nominal 95 %; percentile intervals from 8 seeds cover somewhat less.
        self.assertGreaterEqual(contains / runs, 0.8, f"{contains}/{runs}")

    def test_big_constant_gain_excludes_zero(self):
        rng = random.Random(2)
        fp, by_seed = synthetic(rng, seeds=8, windows=24, shift={"original": 0.04, "faq": 0.02},
                                seed_sd=0.002, window_sd=0.3)
        s = stats.cell_stats(fp, by_seed, ["original", "faq"], B=300)["faq"]
        self.assertTrue(s["excludes_0"])
        self.assertGreater(s["delta_ci"][0], 0)
        self.assertAlmostEqual(s["gain"], 0.5, delta=0.1)  # half the shift -> about half the loss
        self.assertLess(s["gain_ci"][0], s["gain"])
        self.assertGreater(s["gain_ci"][1], s["gain"])
        self.assertEqual(s["sign"], [8, 0])
        self.assertAlmostEqual(s["p_sign"], 2 / 256)
        self.assertLess(s["p_boot"], 0.01)
        # Mirrored: a source twice as harmful excludes 0 from below.
        fp, by_seed = synthetic(rng, seeds=8, windows=24, shift={"original": 0.02, "bad": 0.04},
                                seed_sd=0.002, window_sd=0.3)
        s = stats.cell_stats(fp, by_seed, ["original", "bad"], B=300)["bad"]
        self.assertTrue(s["excludes_0"])
        self.assertLess(s["delta_ci"][1], 0)

    def test_deterministic_and_paired(self):
        rng = random.Random(3)
        fp, by_seed = synthetic(rng, seeds=3, windows=8, shift={"original": 0.02, "faq": 0.01, "self": 0.03},
                                seed_sd=0.002, window_sd=0.1)
        a = stats.cell_stats(fp, by_seed, ["original", "faq", "self"], B=50)
        b = stats.cell_stats(fp, by_seed, ["original", "faq"], B=50)
        self.assertEqual(a["faq"], b["faq"])  # a source's replicates do not depend on the others
        # A source identical to the original: every replicate's delta is exactly 0.
        for s in by_seed:
            by_seed[s]["copy"] = by_seed[s]["original"]
        c = stats.cell_stats(fp, by_seed, ["original", "copy"], B=50)["copy"]
        self.assertEqual(c["delta_ci"], [0.0, 0.0])
        self.assertFalse(c["excludes_0"])
        # A seed without the source is left out of that source's statistics.
        del by_seed[0]["faq"]
        self.assertEqual(stats.cell_stats(fp, by_seed, ["original", "faq"], B=10)["faq"]["seeds"], [1, 2])

    def test_window_counts_must_match(self):
        fp = {"a": ([1.0, 2.0], [1, 1])}
        with self.assertRaises(ValueError):
            stats.cell_stats(fp, {0: {"original": {"a": ([1.0], [1])}, "faq": fp}}, ["original", "faq"], B=5)


if __name__ == "__main__":
    unittest.main()
