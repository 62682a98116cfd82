#!/usr/bin/env python3
"""Fast checks of the evaluation (under 30 s; not part of scripts/test.sh):

    python3 bench/eval/test_eval.py

The end-to-end check needs the release binary (skipped without it); the GSM8K check needs the
shared data folder (skipped without it). Nothing here needs ../shared.
"""

import collections
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import eval_data  # noqa: E402
import standin_policy as S  # noqa: E402

LASER = os.path.join(REPO, ".build", "release", "laser")
Pair = collections.namedtuple("Pair", "prompt_id chosen rejected")


class SplitAndFeatures(unittest.TestCase):
    def test_split_is_a_fixed_function_of_the_text(self):
        texts = ["problem %d" % i for i in range(2000)]
        first = [eval_data.is_test(t) for t in texts]
        self.assertEqual(first, [eval_data.is_test(t) for t in texts])
        self.assertAlmostEqual(sum(first) / len(first), 0.3, delta=0.04)

    def test_calculator_annotations_and_answers(self):
        ann = S.annotations("so 3*4=<<3*4=12>>12 and 12/5=<<12/5=2.4>>2.4 but 2+2=<<2+2=5>>5\nA: 5")
        self.assertEqual([ok for ok, _ in ann], [True, True, False])
        self.assertEqual(S.final_answer("blah\nA: 1,000"), "1000")
        self.assertEqual(S.final_answer("it is $18.00 in total"), "18")
        f = S.response_features("Tom has 3 apples and 4 pears.", ["3+4=<<3+4=7>>7\nA: 7", "3*4=<<3*4=12>>12\nA: 12", "A: 7"])
        i = S.FEATURES.index
        self.assertEqual(f[0][i("agreement")], 0.5)
        self.assertEqual(f[1][i("agreement")], 0.0)
        self.assertEqual(f[0][i("answer_is_last_calc")], 1.0)
        self.assertEqual(f[0][i("question_numbers_used")], 1.0)

    def test_instruction_checks(self):
        p = "Describe autumn in at most five words. Wrap your entire response in double quotes. Include the keyword 'crisp'."
        kinds = [k for k, _ in S.instructions(p)]
        self.assertEqual(sorted(kinds), ["includes", "quotes", "words"])
        good = S.response_features(p, ['"crisp cold air"', "crisp cold air and more words here"])
        self.assertEqual(good[0][S.FEATURES.index("instr_share")], 1.0)
        self.assertLess(good[1][S.FEATURES.index("instr_share")], 1.0)

    def test_stand_in_learns_from_pairs_and_generalises(self):
        def rec(k, right_first):
            right, wrong = "2*3=<<2*3=6>>6\nA: 6", "2*3=<<2*3=7>>7\nA: 7"
            cands = [{"text": right, "correct": True}, {"text": wrong, "correct": False}]
            if not right_first:
                cands.reverse()
            return {"id": "p%d" % k, "prompt": "What is 2 times 3? (%d)" % k, "candidates": cands, "task": "math"}
        train = [rec(k, k % 2 == 0) for k in range(20)]
        test = [rec(k, k % 2 == 0) for k in range(20, 30)]
        table = S.FeatureTable(train, train + test, ["math"])
        policy = S.StandInPolicy(table)
        self.assertEqual(policy.accuracy(test)[0], 0.5)  # untrained: uniform
        losses = []
        for _ in range(5):
            losses.append(policy.step([Pair(r["id"], *(c["text"] for c in sorted(r["candidates"], key=lambda c: not c["correct"])))
                                       for r in train]))
        self.assertLess(losses[-1], losses[0])
        self.assertEqual(policy.accuracy(test)[0], 1.0)


class EndToEnd(unittest.TestCase):
    @unittest.skipUnless(os.access(LASER, os.X_OK), "no release binary (swift build -c release)")
    def test_quick_demo_runs_laser_with_the_stand_in_trainer(self):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([sys.executable, os.path.join(HERE, "run_eval.py"), "--quick", "--datasets", "demo",
                            "--demo-prompts", "16", "--out", out], check=True, stdout=subprocess.DEVNULL, timeout=120)
            with open(os.path.join(out, "report.md")) as f:
                report = f.read()
            self.assertIn("linucb a=0.1", report)
            self.assertIn("RM agreement", report)

    def test_gsm8k_conversion(self):
        d = os.path.join(eval_data.default_shared_dir(REPO), "data", "gsm8k")
        if not os.path.isfile(os.path.join(d, eval_data.GSM8K_FILE)):
            self.skipTest("no shared GSM8K data at %s" % d)
        recs = eval_data.load_gsm8k(d, limit=50)
        self.assertEqual(len(recs), 50)
        self.assertTrue(all(len(r["candidates"]) == 4 and r["reference"] and r["task"] == "gsm8k" for r in recs))
        self.assertEqual(recs[0]["reference"], "18")
        with self.assertRaises(eval_data.DataMissing):
            eval_data.load_gsm8k(os.path.join(d, "nowhere"))


if __name__ == "__main__":
    unittest.main()
