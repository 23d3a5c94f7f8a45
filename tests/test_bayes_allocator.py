"""The default allocator (empirical-Bayes value of information) and its answer model.

The model's posterior is checked against a brute-force computation of the generative story it claims (a mode
with share theta, a Chinese-restaurant field with concentration beta), the prior fit against batches whose shape
is known, and the allocator's behaviour through the real engine on pools written here (no ../shared needed) and
on a bundled recorded pool.
"""

from __future__ import annotations

import random
import statistics

import numpy as np
import pytest

from dynscaling import Budget, Question, Usage, load_pool, replay
from dynscaling.allocators import BayesAllocator
from dynscaling.allocators.answer_model import _BETA, _THETA, CELLS, AnswerModel, evidence, fit_weights
from dynscaling.answers import AnswerClusterer
from dynscaling.engine import Engine
from dynscaling.errors import ConfigError
from dynscaling.pools import Pool, PoolQuestion, bundled_pools


def joint_probability(labels: list[str], weights: np.ndarray) -> tuple[list[str | None], np.ndarray]:
    """The hypotheses (which seen label is the mode, or None: an unseen one) and, for each and each grid cell, the
    probability of the labels in order: the mode with theta, a field label with the Chinese restaurant's odds."""
    hypotheses: list[str | None] = [*dict.fromkeys(labels), None]
    joint = np.zeros((len(hypotheses), CELLS))
    for h, mode in enumerate(hypotheses):
        for cell in range(CELLS):
            theta, beta = _THETA[cell], _BETA[cell]
            p, field = 1.0, {}
            for label in labels:
                if label == mode:
                    p *= theta
                else:
                    f = sum(field.values())
                    p *= (1 - theta) * (field[label] / (f + beta) if label in field else beta / (f + beta))
                    field[label] = field.get(label, 0) + 1
            joint[h, cell] = weights[cell] * p
    return hypotheses, joint


def brute_force(labels: list[str], weights: np.ndarray) -> tuple[float, float, float, float]:
    """P(the leader is the mode), P(the next vote goes to the leader), P(it goes to the runner-up or an answer
    tied with it, the leader aside) and P(the runner-up is the mode) (0 with no runner-up), straight from the
    generative story:
    sum over which label is the mode (or an unseen one) and over the grid, multiplying each sample's probability
    in order."""
    counts: dict[str, int] = {}
    leader, best = None, 0
    for label in labels:  # the leader as the vote defines it: a strictly greater count overtakes
        counts[label] = counts.get(label, 0) + 1
        if counts[label] > best:
            leader, best = label, counts[label]
    hypotheses, joint = joint_probability(labels, weights)
    total = joint.sum()
    leader_is_mode = joint[hypotheses.index(leader)].sum() / total
    others = [lab for lab in counts if lab != leader]
    runner = max(others, key=lambda lab: counts[lab]) if others else None

    def next_vote(target: str | None) -> float:
        if target is None:
            return 0.0
        p = 0.0
        for h, mode in enumerate(hypotheses):
            field_votes = sum(c for lab, c in counts.items() if lab != mode)
            for cell in range(CELLS):
                theta, beta = _THETA[cell], _BETA[cell]
                share = theta if target == mode else (1 - theta) * counts[target] / (field_votes + beta)
                p += joint[h, cell] / total * share
        return p

    tied = [lab for lab in others if counts[lab] == counts[runner]] if runner else []
    runner_is_mode = joint[hypotheses.index(runner)].sum() / total if runner else 0.0
    return (float(leader_is_mode), float(next_vote(leader)), float(sum(next_vote(lab) for lab in tied)),
            float(runner_is_mode))


def shape(labels: list[str]) -> tuple[int, ...]:
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return tuple(sorted(counts.values(), reverse=True))


class TestAnswerModel:
    @pytest.mark.parametrize("labels", [list("a"), list("aa"), list("ab"), list("aab"), list("abc"), list("aabbc"),
                                        list("aaab"), list("abab"), list("aabcd"), list("abcabcd"),
                                        list("aabbcc")])
    def test_the_posterior_is_the_generative_story_computed_by_brute_force(self, labels: list[str]) -> None:
        rng = np.random.default_rng(len(labels))
        weights = rng.dirichlet(np.ones(CELLS))
        model = AnswerModel(weights, horizon=4)
        assert model.posterior(shape(labels)) == pytest.approx(brute_force(labels, weights), rel=1e-9, abs=1e-15)

    @pytest.mark.parametrize("labels", [list("ab"), list("aab"), list("aabc"), list("abc"), list("aabbc"),
                                        list("aaabbbc"), list("abcabcd"), list("aaabcd"), list("aabbcc")])
    def test_one_vote_ahead_is_the_generative_storys_expectation(self, labels: list[str]) -> None:
        """``W_1`` by brute force: every next label (each seen one, and a new one) with its predictive probability
        (the labels' joint probability with it over without it), times the value after it. A vote for a third
        answer counts: taken as no change, a 2-1-1 read a different ``W_1`` (a drift of about 1e-3)."""
        weights = np.random.default_rng(len(labels) + 7).dirichlet(np.ones(CELLS))
        before = joint_probability(labels, weights)[1].sum()
        following = [*dict.fromkeys(labels), "new"]
        chances = [joint_probability([*labels, x], weights)[1].sum() / before for x in following]
        assert sum(chances) == pytest.approx(1.0, rel=1e-12)
        expected = sum(p * brute_force([*labels, x], weights)[0] for p, x in zip(chances, following, strict=True))
        assert AnswerModel(weights, horizon=1).lookahead(shape(labels), 1) == pytest.approx(expected, rel=1e-9)

    def test_a_unanimous_batch_makes_one_answer_nearly_certain_and_a_diffuse_one_does_not(self) -> None:
        unanimous = AnswerModel(fit_weights({(4,): 90, (3, 1): 10}, prior_weight=4), horizon=4)
        diffuse = AnswerModel(fit_weights({(1, 1, 1, 1): 60, (2, 1, 1): 30, (2, 2): 10}, prior_weight=4), horizon=4)
        assert unanimous.value((1,)) > 0.9
        assert diffuse.value((1,)) < unanimous.value((1,)) - 0.2
        # where answers are diffuse, agreement is strong evidence and a 1-1 split most likely holds neither
        assert diffuse.value((2,)) > diffuse.value((1,)) + 0.2
        assert diffuse.value((1, 1)) < 0.5

    def test_the_fit_moves_the_prior_toward_the_batch_and_a_tiny_batch_stays_near_flat(self) -> None:
        flat = np.full(CELLS, 1 / CELLS)
        mean_theta = lambda w: float(w @ _THETA)  # noqa: E731
        confident = fit_weights({(4,): 200}, prior_weight=4)
        assert mean_theta(confident) > mean_theta(flat) + 0.1
        one_question = fit_weights({(4,): 1}, prior_weight=4)
        assert abs(mean_theta(one_question) - mean_theta(flat)) < abs(mean_theta(confident) - mean_theta(flat))
        assert np.allclose(fit_weights({(1,): 50}, prior_weight=4), flat)  # one vote says nothing

    def test_in_a_batch_whose_modes_hold_under_half_the_samples_the_fit_finds_it_and_values_leaders_closer(
            self) -> None:
        """A weak model's batch: each question's right answer gets 30% of the samples, the rest scatter over
        eleven wrong answers. The fit puts most of its weight on the cells below one half, and the value of a
        leader (P(it is the mode)) is closer to how often such a leader is the mode than with the grid cut at one
        half, whose fit piles on ``theta = 0.5`` and calls scattered leaders more settled than they are."""
        rng = random.Random(3)
        tallies: list[tuple[int, ...]] = []
        leader_is_mode: list[bool] = []
        for _ in range(3000):
            counts: dict[int, int] = {}
            order: list[int] = []
            for _ in range(8):
                answer = 0 if rng.random() < 0.3 else rng.randrange(1, 12)
                counts[answer] = counts.get(answer, 0) + 1
                order.append(answer)
            top = max(counts.values())
            leader = next(a for a in order if counts[a] == top)  # the first to reach the top count leads
            tallies.append(tuple(sorted(counts.values(), reverse=True)))
            leader_is_mode.append(leader == 0)
        shapes: dict[tuple[int, ...], int] = {}
        for shape in tallies:
            shapes[shape] = shapes.get(shape, 0) + 1
        weights = fit_weights(shapes, prior_weight=4)
        assert weights[_THETA < 0.5].sum() > 0.5
        half_and_up = np.where(_THETA >= 0.5, 1.0, 0.0) / np.count_nonzero(_THETA >= 0.5)
        cut = fit_weights(shapes, prior_weight=4, toward=half_and_up)  # EM keeps a zero weight at zero
        assert cut[_THETA < 0.5].sum() == 0.0

        def calibration_error(model: AnswerModel) -> float:
            total = questions = 0.0
            for shape, count in shapes.items():
                if count >= 100:
                    observed = statistics.fmean(ok for s, ok in zip(tallies, leader_is_mode, strict=True)
                                                if s == shape)
                    total += count * abs(model.value(shape) - observed)
                    questions += count
            return total / questions

        full, half = calibration_error(AnswerModel(weights, 6)), calibration_error(AnswerModel(cut, 6))
        assert full < half - 0.01
        assert full < 0.06

    def test_the_fit_is_the_batchs_maximum_likelihood_prior(self) -> None:
        """With no shrinkage the fitted weights maximise the batch's likelihood (each tally's probability summed
        over the grid): no mixture with other weights scores higher. One-vote tallies say nothing and change
        nothing, wherever they come in the batch; two-vote tallies already move the fit."""
        batch = {(1,): 80, (2,): 40, (1, 1): 25, (4,): 60, (3, 1): 30, (2, 2): 12, (2, 1, 1): 18, (5, 2, 1): 9,
                 (1, 1, 1, 1): 15}
        weights = fit_weights(batch, prior_weight=0)

        def log_likelihood(w: np.ndarray) -> float:
            return sum(count * float(np.log(evidence(shape)[0] @ w)) for shape, count in batch.items())

        best = log_likelihood(weights)
        rng = np.random.default_rng(5)
        for _ in range(40):
            other = 0.8 * weights + 0.2 * rng.dirichlet(np.ones(CELLS))
            assert log_likelihood(other) < best
        without_one_vote = {s: c for s, c in batch.items() if sum(s) > 1}
        assert np.array_equal(fit_weights(without_one_vote, prior_weight=0), weights)
        flat = np.full(CELLS, 1 / CELLS)
        assert not np.allclose(fit_weights({(2,): 100}, prior_weight=4), flat)
        assert not np.allclose(fit_weights({(1, 1): 100}, prior_weight=4), flat)

    def test_a_tally_of_thousands_of_votes_still_has_a_finite_posterior(self) -> None:
        """The likelihoods are scaled by their largest before exponentiating: a long-running question's tally
        must not underflow to 0/0."""
        model = AnswerModel(np.full(CELLS, 1 / CELLS), horizon=2)
        for tally in [(900, 500), (2000, 40, 3), (700, 690, 10)]:
            assert all(0.0 <= p <= 1.0 for p in model.posterior(tally)), tally
        assert model.value((2000, 40, 3)) > 0.99

    def test_one_more_vote_never_flips_a_leader_so_only_a_longer_look_sees_a_gain(self) -> None:
        model = AnswerModel(fit_weights({(3,): 50, (2, 1): 30, (1, 1, 1): 20}, prior_weight=4), horizon=6)
        for s in [(1,), (2,), (3,)]:
            # the posterior predictive is a martingale: with no flip possible, one vote gains nothing
            assert model.lookahead(s, 1) == pytest.approx(model.value(s), abs=1e-12)
        assert model.lookahead((2,), 3) > model.value((2,))  # three rival votes can flip a 2-0
        # A vote for a third answer is followed in the value: until the runner-up can overtake (v1 - v2 + 1
        # votes), no look-ahead may read a gain. Taken as no change, it read 1.5e-3 per vote on a 4-1.
        for s in [(4, 1), (8, 4, 1), (3, 1, 1), (5, 2, 2, 1), (6, 1, 1, 1), (9,)]:
            margin = s[0] - (s[1] if len(s) > 1 else 0)
            for k in range(1, min(6, margin) + 1):
                assert model.lookahead(s, k) == pytest.approx(model.value(s), abs=1e-12), (s, k)
        assert model.index((1, 1)) > model.index((2,)) > 0  # a tie is worth breaking before a 2-0 is doubted


def synthetic_pool(shares: list[float], samples: int = 12, seed: int = 0, abstain: float = 0.0) -> Pool:
    """Questions whose answer 'right' has the given share; the rest are spread over three wrong answers."""
    rng = random.Random(seed)
    entries = []
    for i, share in enumerate(shares):
        clusterer = AnswerClusterer("text")
        answers = [None if rng.random() < abstain else "right" if rng.random() < share else f"wrong{rng.randint(1, 3)}"
                   for _ in range(samples)]
        classes = tuple(clusterer.assign(a) for a in answers)
        entries.append(PoolQuestion(Question(f"q{i}", f"question {i}", "text", gold="right"), tuple(answers),
                                    tuple(answers), classes, tuple(Usage(10, 10 + 40 * (i % 2)) for _ in answers),
                                    clusterer))
    return Pool("synthetic", "<memory>", tuple(entries))


def run(pool: Pool, budget: Budget, seed: int = 0, **params: float | bool) -> Engine:
    from dynscaling.backends.replay import ReplayBackend

    engine = Engine(pool.questions, "dynscaling-parallel", budget, seed=seed, needs_messages=False,
                    clusterers=[e.clusterer for e in pool.entries], allocator=BayesAllocator(**params))
    engine.run_sync(ReplayBackend(pool, seed).draw_class)
    return engine


class TestAllocator:
    def test_every_question_gets_a_first_sample_before_any_gets_a_second(self) -> None:
        pool = synthetic_pool([0.9] * 30)
        engine = run(pool, Budget(samples=30))
        assert [t.samples for t in engine.tallies] == [1] * 30

    def test_a_budget_smaller_than_the_batch_reaches_a_seeded_random_subset(self) -> None:
        pool = synthetic_pool([0.9] * 40)
        picked = [frozenset(i for i, t in enumerate(run(pool, Budget(samples=10), seed=s).tallies) if t.samples)
                  for s in range(3)]
        assert all(len(p) == 10 for p in picked)
        assert len(set(picked)) == 3  # not the first ten, nor the same ten
        assert picked[0] == frozenset(i for i, t in enumerate(run(pool, Budget(samples=10), seed=0).tallies)
                                      if t.samples)  # deterministic under the seed

    def test_a_question_that_abstained_is_asked_again_before_answered_ones_get_a_second_sample(self) -> None:
        answering = synthetic_pool([1.0] * 10)
        silent = synthetic_pool([1.0] * 5, abstain=1.0)  # every sample abstains
        pool = Pool("mixed", "<memory>", tuple(
            PoolQuestion(Question(f"m{i}", e.question.text + f" {i}", "text", gold="right"), e.texts, e.answers,
                         e.classes, e.usages, e.clusterer)
            for i, e in enumerate(answering.entries + silent.entries)))
        engine = run(pool, Budget(samples=20))  # one round of 15, then 5 more
        assert [t.samples for t in engine.tallies[:10]] == [1] * 10
        assert [t.samples for t in engine.tallies[10:]] == [2] * 5

    def test_the_whole_budget_is_spent_by_default_and_min_gain_stops_early(self) -> None:
        pool = synthetic_pool([0.95] * 20 + [0.5] * 20)
        assert run(pool, Budget(samples=200)).ledger.spent_samples == 200
        frugal = run(pool, Budget(samples=200), min_gain=0.01).ledger.spent_samples
        assert frugal < 200

    def test_split_questions_get_more_samples_than_unanimous_ones(self) -> None:
        pool = synthetic_pool([1.0] * 30 + [0.55] * 30, seed=1)
        engine = run(pool, Budget(samples=180))
        unanimous = statistics.fmean(t.samples for t in engine.tallies[:30])
        split = statistics.fmean(t.samples for t in engine.tallies[30:])
        assert split > unanimous + 1

    def test_a_token_budget_caps_the_spend_and_leaves_the_ranking_per_sample(self) -> None:
        # Within a batch a dear question is mostly a hard one, so cost does not enter the ranking by default:
        # the run decides exactly as under a sample budget of the samples it could afford.
        pool = synthetic_pool([0.7] * 40, seed=2)  # odd questions cost 60 tokens a sample, even ones 20
        budget = Budget(tokens=40 * 60 * 3)
        capped = run(pool, budget)
        assert capped.allocator.unit_cost is None
        assert capped.ledger.spent_tokens <= budget.tokens
        counted = run(pool, Budget(samples=capped.ledger.spent_samples))
        assert [t.samples for t in capped.tallies] == [t.samples for t in counted.tallies]

    def test_with_per_token_and_a_token_budget_cheaper_questions_are_preferred(self) -> None:
        pool = synthetic_pool([0.7] * 40, seed=2)  # odd questions cost 60 tokens a sample, even ones 20
        budget = Budget(tokens=40 * 60 * 3)
        engine = run(pool, budget, per_token=True)
        cheap = sum(t.samples for i, t in enumerate(engine.tallies) if i % 2 == 0)
        dear = sum(t.samples for i, t in enumerate(engine.tallies) if i % 2 == 1)
        assert cheap > dear
        assert engine.ledger.spent_tokens <= budget.tokens

    @pytest.mark.parametrize(("params", "message"), [
        ({"horizon": 0}, "horizon must be in 1..64, got 0"),
        ({"min_gain": 1.0}, "min_gain must be in [0, 1), got 1.0"),
        ({"refit": 1.0}, "refit must be > 1, got 1.0"),
        ({"prior_weight": -1.0}, "prior_weight must be >= 0, got -1.0"),
        ({"cap": 0}, "cap must be >= 1, got 0"),
    ])
    def test_bad_parameters_are_one_line_errors(self, params: dict[str, float], message: str) -> None:
        with pytest.raises(ConfigError) as raised:
            BayesAllocator(**params)
        assert str(raised.value) == message


class TestOnARecordedPool:
    def test_at_two_samples_per_question_it_beats_self_consistency_on_every_seed(self) -> None:
        # SC at 2 is no better than one sample (a 1-1 tie keeps the first answer); the default uses the second
        # sample where a third can break a tie. Bundled ChatGPT date pool (CC-BY-4.0), paired seeds.
        path = next(p for p in bundled_pools() if "chatgpt" in str(p))
        pool = load_pool(path)
        budget = Budget(samples=2 * len(pool.entries))
        gains = [(replay(pool, "dynscaling-parallel", budget, seed=s).accuracy or 0.0)
                 - (replay(pool, "sc", budget, seed=s).accuracy or 0.0) for s in range(4)]
        assert all(g > 0 for g in gains), gains


def test_a_race_that_looks_settled_gets_samples_before_unanimous_tallies_with_no_real_gain(shared_pool) -> None:  # noqa: ANN001
    """gpt-3.5 date at T=0.8, 10 samples per question of its 20. When the look-ahead took a vote for a third answer
    as no change, a unanimous 9-0 read a gain of about 1e-7 per vote where an 8-4 race, its leader a quarter likely
    not the mode, read none; those tallies took the samples the races needed, and six questions whose whole pool
    is a race within two votes stopped at 5-12 samples, on tallies of 4-1 to 7-3. Every race is now sampled until
    its pool runs dry unless its tally is one no look-ahead can overturn (the runner-up needs more votes than the
    horizon)."""
    pool = shared_pool("gpt35-turbo_date_cot_t0.8_x20")
    questions = len(pool.entries)
    result = replay(pool, "dynscaling-parallel", Budget(samples=10 * questions), seed=0)
    horizon = BayesAllocator().horizon
    races = short = 0
    for entry, answer in zip(pool.entries, result.results, strict=True):
        counts = sorted((entry.classes.count(c) for c in set(entry.classes) if c is not None), reverse=True)
        if len(counts) > 1 and counts[0] - counts[1] <= 2:
            races += 1
            if answer.samples < len(entry.classes):
                short += 1
                votes = [count for _, count in answer.votes]
                assert votes[0] - votes[1] >= horizon, (answer.question_id, votes, answer.samples)
    assert races >= 20 and short <= 2, (races, short)
