#!/usr/bin/env python3
"""Held-out threshold checks of a NAB results directory (how well a detector's threshold
carries over to files it was not chosen on).

    python3 scripts/nab-heldout.py RESULTS [--nab ../shared/nab]

Two checks: 2-fold over alternate files, and leave-one-category-out. In each fold the
threshold of each profile is optimised by nab_score.py on the training files and applied to
the held-out ones; the held-out raw scores are summed and normalised over all files, so the
figures compare with the in-sample normalised score printed first.
"""
import argparse
import glob
import json
import os
import subprocess
import tempfile

PROFILES = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--nab", default=os.path.join(here, "..", "..", "shared", "nab"))
    args = ap.parse_args()
    data = os.path.join(args.nab, "data")
    labels = os.path.join(args.nab, "labels", "combined_windows.json")
    scorer = os.path.join(args.nab, "nab_score.py")
    files = sorted(os.path.relpath(f, data) for f in glob.glob(os.path.join(data, "*", "*.csv")))
    if not files:
        raise SystemExit(f"no NAB data under {data}")

    def score(selection, thresholds=None):
        with tempfile.TemporaryDirectory() as tmp:
            listing = os.path.join(tmp, "files.txt")
            out = os.path.join(tmp, "score.json")
            with open(listing, "w") as f:
                f.write("\n".join(selection) + "\n")
            cmd = ["python3", scorer, "--data", data, "--labels", labels,
                   "--results", args.results, "--files", "@" + listing, "--json", out]
            for p, t in (thresholds or {}).items():
                cmd += ["--threshold", f"{p}={t!r}"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            with open(out) as f:
                return json.load(f)["profiles"]

    everything = score(files)

    def held_out(folds):
        raw = {p: 0.0 for p in PROFILES}
        chosen = []
        for test in folds:
            train = [f for f in files if f not in test]
            trained = score(train)
            thresholds = {p: trained[p]["threshold"] for p in PROFILES}
            chosen.append(thresholds["standard"])
            tested = score(test, thresholds)
            for p in PROFILES:
                raw[p] += tested[p]["raw_score"]
        norm = {}
        for p in PROFILES:
            null, perfect = everything[p]["null_score"], everything[p]["perfect_score"]
            norm[p] = 100 * (raw[p] - null) / (perfect - null)
        return norm, chosen

    def fmt(d):
        return " / ".join(f"{d[p]:.2f}" for p in PROFILES)

    in_sample = {p: everything[p]["normalized_score"] for p in PROFILES}
    thresholds = " / ".join(f"{everything[p]['threshold']:.4f}" for p in PROFILES)
    print(f"in-sample        {fmt(in_sample)}  (thresholds {thresholds})")
    two, t2 = held_out([files[0::2], files[1::2]])
    print(f"2-fold held out  {fmt(two)}  (standard thresholds {' '.join(f'{t:.3f}' for t in t2)})")
    categories = sorted({f.split("/")[0] for f in files})
    loco, tl = held_out([[f for f in files if f.startswith(c + "/")] for c in categories])
    print(f"LOCO held out    {fmt(loco)}  (standard thresholds {' '.join(f'{t:.3f}' for t in tl)})")


if __name__ == "__main__":
    main()
