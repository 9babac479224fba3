"""The cross-batch memory: a ring buffer against a Python deque, no gradient into stored embeddings, the loss with
a memory against a term-by-term sum, the batch entering after the step's mining, its telemetry, and the settings
that cannot work refused before any data is read."""

from __future__ import annotations

from collections import deque

import mindspore as ms
import numpy as np
import pytest

from facenet.errors import ConfigError
from facenet.losses import TripletLoss
from facenet.mining import BatchAllMiner, BatchHardMiner, MemorySettings, SemiHardMiner
from facenet.mining.memory import UNUSED
from tests.test_miners import MINERS, ORACLES, Enqueue, brute_distances, roles
from tests.test_triplet_loss import brute_loss, loss_value


def _memory_state(memory) -> dict[str, np.ndarray]:
    return {p.name.removeprefix("memory."): p.asnumpy() for p in memory.get_parameters()}


def test_the_ring_buffer_holds_the_last_m_embeddings_as_a_deque_does():
    """Batches of 4 into 10 slots (a batch wraps round the end): after every step the slots, read from the write
    position on, are the deque's last 10 (embedding, label, step written), oldest first."""
    loss = TripletLoss(SemiHardMiner(MemorySettings(10, 0)), 0.2, embedding_size=3)
    store, want = Enqueue(loss.memory), deque(maxlen=10)
    rng = np.random.default_rng(0)
    for step in range(7):
        e = rng.normal(size=(4, 3)).astype(np.float32)
        y = rng.integers(0, 50, 4).astype(np.int32)
        store(ms.Tensor(e), ms.Tensor(y))
        want.extend((e[i], y[i], step) for i in range(4))
        state = _memory_state(loss.memory)
        assert state["step"][0] == step + 1 and state["position"][0] == 4 * (step + 1) % 10
        filled = np.flatnonzero(state["written"] >= 0)
        order = np.roll(np.arange(10), -int(state["position"][0]))
        order = [s for s in order if s in filled]  # oldest first (before the first wrap: slots 0.. in order)
        assert len(order) == len(want)
        for slot, (emb, label, written) in zip(order, want, strict=True):
            row = state["rows"][slot]
            assert np.array_equal(row[:3], emb) and row[3] == 1.0 and row[4] == pytest.approx(float(emb @ emb))
            assert state["labels"][slot] == label and state["written"][slot] == written
        empty = np.setdiff1d(np.arange(10), filled)
        assert (state["labels"][empty] == -1).all() and (state["rows"][empty, 4] == UNUSED).all()


def _filled(name, squared=False, size=16, start_step=0, seed=5):
    """A loss with `name`'s miner and a memory holding two earlier batches of 6 (one stored image shares the
    anchors' identity 0, some identities 1 and 2), and the current batch of 6 in 2-D."""
    rng = np.random.default_rng(seed)
    loss = TripletLoss(MINERS[name](MemorySettings(size, start_step)), 0.3, squared, embedding_size=2)
    store, history = Enqueue(loss.memory), []
    for i in range(2):
        he = rng.normal(size=(6, 2)).astype(np.float32)
        hy = np.array([0, 1, 5 + i, 5 + i, 9, 2], np.int32)
        store(ms.Tensor(he), ms.Tensor(hy))
        history.append((he, hy))
    e = rng.normal(size=(6, 2)).astype(np.float32)
    y = np.array([0, 0, 1, 1, 2, 2], np.int32)
    stored = np.concatenate([h[0] for h in history] + [np.zeros((size - 12, 2), np.float32)])
    stored_labels = np.concatenate([h[1] for h in history] + [np.full(size - 12, -1, np.int32)])
    return loss, e, y, stored, stored_labels


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("name", list(MINERS))
def test_loss_and_gradient_with_a_memory_equal_the_term_by_term_sum(name, squared, pynative):
    """Every miner with a memory: the loss and its gradient with respect to the batch equal `brute_loss` over the
    brute-force selection (stored negatives as constants); batch all's counted sum included."""
    check_against_the_term_by_term_sum(name, squared)


# the first miner in the default suite, the others (compiling as long) in the slow one
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow if i else ()) for i, n in enumerate(MINERS)])
def test_the_compiled_loss_with_a_memory_equals_the_term_by_term_sum(name):
    check_against_the_term_by_term_sum(name, squared=name == "semi_hard")


def check_against_the_term_by_term_sum(name: str, squared: bool) -> None:
    loss, e, y, stored, stored_labels = _filled(name, squared)
    refs = np.concatenate([e, stored])
    usable = np.r_[np.ones(6, bool), stored_labels >= 0]
    pos, neg = roles(y, np.r_[y, stored_labels], usable)
    triplets = ORACLES[name](brute_distances(e.astype(np.float64), refs.astype(np.float64)), pos, neg)
    assert any(n >= 6 for _, _, n in triplets)
    want, want_grad = brute_loss(e, refs, triplets, 0.3, squared)
    value = loss_value(loss)
    x, t = ms.Tensor(e), ms.Tensor(y)
    assert float(value(x, t).asnumpy()) == pytest.approx(want, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(ms.grad(value)(x, t).asnumpy(), want_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(MINERS))
def test_stored_embeddings_get_no_gradient(name, pynative):
    """Made trainable for the test (a non-trainable parameter gets a zero gradient whatever the loss does), the
    stored rows still get none: the loss treats them as constants."""
    loss, e, y, *_ = _filled(name)
    loss.memory.rows.requires_grad = True
    grad_fn = ms.grad(loss_value(loss), grad_position=0, weights=ms.ParameterTuple([loss.memory.rows]))
    to_batch, (to_memory,) = grad_fn(ms.Tensor(e), ms.Tensor(y))
    assert np.abs(to_batch.asnumpy()).max() > 1e-3 and not to_memory.asnumpy().any()


@pytest.mark.parametrize("name", list(MINERS))
def test_memory_telemetry_counts_the_active_triplets_with_stored_negatives_and_their_age(name, pynative):
    """Against the brute-force selection: the share of active triplets whose negative is stored, those negatives'
    mean age (slots 0-5 written at step 0, 6-11 at step 1, mined at step 2), the slots in use (12 of 16)."""
    loss, e, y, stored, stored_labels = _filled(name)
    names = loss.TELEMETRY
    assert names[-3:] == ("memory_negative_fraction", "memory_negative_age", "memory_in_use")
    named = dict(zip(names, loss(ms.Tensor(e), ms.Tensor(y))[1].asnumpy(), strict=True))
    refs = np.concatenate([e, stored]).astype(np.float64)
    d = brute_distances(e.astype(np.float64), refs)
    pos, neg = roles(y, np.r_[y, stored_labels], np.r_[np.ones(6, bool), stored_labels >= 0])
    active = [n for a, p, n in ORACLES[name](d, pos, neg) if d[a, p] - d[a, n] + 0.3 > 0]
    ages = [2 - (n - 6) // 6 for n in active if n >= 6]
    assert active and ages
    assert named["memory_negative_fraction"] == pytest.approx(len(ages) / len(active))
    assert named["memory_negative_age"] == pytest.approx(np.mean(ages))
    assert named["memory_in_use"] == pytest.approx(12 / 16)


def test_before_start_step_the_memory_fills_but_is_not_mined(pynative):
    early, e, y, *_ = _filled("semi_hard", start_step=3)  # two batches stored: step 2 < 3
    alone = TripletLoss(SemiHardMiner(), 0.3)
    got, tel = early(ms.Tensor(e), ms.Tensor(y))
    want, want_tel = alone(ms.Tensor(e), ms.Tensor(y))
    assert float(got.asnumpy()) == float(want.asnumpy())
    assert np.array_equal(tel.asnumpy()[: len(want_tel)], want_tel.asnumpy())
    assert tel.asnumpy()[-1] == 0.0  # memory_in_use
    assert _memory_state(early.memory)["step"][0] == 2


def test_the_training_step_stores_its_batch_after_mining(compose_cfg):
    """In the compiled step the memory a batch is mined against holds the earlier batches only: the first step
    sees an empty memory; afterwards the memory holds that step's embeddings (computed before the update)."""
    from facenet.training.setup import build_model, build_step

    cfg = compose_cfg(
        "experiment=smoke",
        "miner.memory.size=128",
        "miner.memory.start_step=0",
        "batch.identities=8",
        "optimizer=sgd",
        "lr=0.05",
    )
    ms.set_seed(0)
    net = build_model(cfg)
    step, _ = build_step(cfg, net, steps_per_epoch=3)
    rng = np.random.default_rng(0)
    x = [ms.Tensor(rng.normal(size=(32, 3, 32, 32)).astype(np.float32)) for _ in range(3)]
    y = ms.Tensor(np.repeat(np.arange(8), 4).astype(np.int32))
    names = step.loss.TELEMETRY
    before = net(x[0]).asnumpy()  # training mode, the weights the step starts from
    _, telemetry = step(x[0], y)
    assert dict(zip(names, telemetry.asnumpy(), strict=True))["memory_in_use"] == 0.0
    state = _memory_state(step.memory)
    np.testing.assert_allclose(state["rows"][:32, : before.shape[1]], before, atol=1e-6)
    assert np.array_equal(state["labels"][:32], y.asnumpy()) and (state["labels"][32:] == -1).all()
    assert state["step"][0] == 1 and (state["written"][:32] == 0).all() and (state["written"][32:] == -1).all()
    _, telemetry = step(x[1], y)
    assert dict(zip(names, telemetry.asnumpy(), strict=True))["memory_in_use"] == 32 / 128


# ------------------------------------------------------------------ settings refused before any data is read

# (fmt: skip: each bad setting beside the message it must give, one row each, reads as the table it is.)
BAD = [
    (["miner.memory.size=32"], r"miner.memory.size=32 is smaller than a batch \(64 images\)"),
    (["miner.memory.size=-1"], r"miner.memory.size=-1: must be >= 0"),
    (["miner.memory.size=4096", "miner.memory.start_step=-5"], r"miner.memory.start_step=-5: must be >= 0"),
    (["miner.memory.size=4096", "miner=random_triplets"], r"needs online mining on P x K batches; "
     r"miner=RandomTripletsMiner trains on offline triplets, with nothing to mine"),
    (["miner.memory.size=4096", "batch=triplets"], r"mines P x K batches \(batch=pk\); batch=triplets holds offline"),
    (["miner.memory.size=4096", "loss=arcface"], r"miner.memory.size=4096 does not apply to loss=ArcFaceLoss: a "
     r"cross-batch memory holds earlier embeddings for a triplet miner"),
    (["miner.memory.size=80", "batch.singletons=24"], r"smaller than a batch \(88 images\)"),
]  # fmt: skip


@pytest.mark.parametrize("overrides,error", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_a_memory_that_cannot_work_is_refused_before_any_data_is_read(compose_cfg, tmp_path, overrides, error):
    from facenet.app import run

    with pytest.raises(ConfigError, match=error):
        run(compose_cfg(f"output_dir={tmp_path}", f"data_dir={tmp_path / 'data'}", "tracking=off", *overrides))
    assert not (tmp_path / "data").exists()  # refused before the synthetic set was generated


def test_data_parallel_with_a_memory_needs_the_global_batch(compose_cfg, monkeypatch):
    from facenet.training import setup

    monkeypatch.setattr(setup, "world", lambda: (0, 2))
    with pytest.raises(ConfigError, match="under data parallel needs hardware.mine_global_batch=true"):
        setup.check_memory(compose_cfg("experiment=smoke", "miner.memory.size=128"))
    cfg = compose_cfg("experiment=smoke", "miner.memory.size=64", "hardware.mine_global_batch=true")
    with pytest.raises(ConfigError, match=r"smaller than the global batch \(2 ranks x 64 = 128 images\)"):
        setup.check_memory(cfg)
    setup.check_memory(compose_cfg("experiment=smoke", "miner.memory.size=128", "hardware.mine_global_batch=true"))


def test_batch_hard_and_batch_all_take_stored_negatives_too(pynative):
    """A stored embedding of another identity right beside an anchor: batch hard picks it, batch all counts it."""
    e = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [5.0, 6.0]], np.float32)
    y = np.array([0, 0, 1, 1], np.int32)
    for miner in (BatchHardMiner, BatchAllMiner):
        loss = TripletLoss(miner(MemorySettings(4, 0)), 0.5, embedding_size=2)
        Enqueue(loss.memory)(ms.Tensor([[0.1, 0.0], [9.0, 9.0], [0.0, 0.1], [3.0, 3.0]]), ms.Tensor([7, 8, 0, 9]))
        columns, listed, index, valid, negatives = (t.asnumpy() for t in loss.select(ms.Tensor(e), ms.Tensor(y)))
        assert negatives[0].tolist() == [False, False, True, True, True, True, False, True]  # slot 2: anchor's own
        if miner is BatchHardMiner:
            assert index[0, 0] == 4 and valid[0, 0] == 1.0  # slot 0, at 0.1


# ------------------------------------------------------------------ warm starts and resumes


def _trained_step(compose_cfg, folder, *overrides):
    """A training step with a memory after one step, saved as a training checkpoint with its sidecar."""
    from facenet.models.io import model_spec, save_model
    from facenet.training.setup import build_model, build_step

    cfg = compose_cfg("experiment=smoke", "miner.memory.size=64", "miner.memory.start_step=0", *overrides)
    step, _ = build_step(cfg, build_model(cfg), steps_per_epoch=3)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 3, 32, 32)).astype(np.float32)
    step(ms.Tensor(images), ms.Tensor(np.repeat(np.arange(16), 4).astype(np.int32)))
    path = folder / "memory.ckpt"
    record = {"size": 64, "start_step": 0}
    save_model(step, path, {**model_spec(cfg), "loss": {"name": "TripletLoss", "memory": record}})
    return step, path


def test_a_warm_start_never_takes_a_memory(compose_cfg, tmp_path):
    """ckpt= with a memory: from a plain checkpoint (no memory in it) and from one with a filled memory, the
    network's weights are taken and the memory starts empty."""
    from facenet.training.setup import build_model, build_step
    from tests.conftest import tiny_checkpoint

    trained, with_memory = _trained_step(compose_cfg, tmp_path)
    assert _memory_state(trained.memory)["step"][0] == 1
    for ckpt in (tiny_checkpoint(compose_cfg, tmp_path), with_memory):
        cfg = compose_cfg("experiment=smoke", "miner.memory.size=64", f"ckpt={ckpt}")
        step, _ = build_step(cfg, build_model(cfg), steps_per_epoch=3)
        state = _memory_state(step.memory)
        assert state["step"][0] == 0 and (state["written"] == -1).all() and (state["labels"] == -1).all()


def test_a_memory_run_resumes_with_its_memory_or_not_at_all(compose_cfg, tmp_path):
    from facenet.training.resume import load_training_state
    from facenet.training.setup import build_model, build_step

    trained, ckpt = _trained_step(compose_cfg, tmp_path)

    def step_of(*overrides):
        cfg = compose_cfg("experiment=smoke", *overrides)
        return build_step(cfg, build_model(cfg), steps_per_epoch=3)[0]

    with pytest.raises(
        ConfigError,
        match=r"trained with a cross-batch memory \(size 64, start_step 0\); resume with "
        r"miner.memory.size=64 miner.memory.start_step=0",
    ):
        load_training_state(step_of(), ckpt)
    with pytest.raises(ConfigError, match=r"resume with miner.memory.start_step=0"):
        load_training_state(step_of("miner.memory.size=64", "miner.memory.start_step=5"), ckpt)
    resumed = step_of("miner.memory.size=64", "miner.memory.start_step=0")
    load_training_state(resumed, ckpt)
    for key, value in _memory_state(trained.memory).items():
        assert np.array_equal(_memory_state(resumed.memory)[key], value), key
    plain = tmp_path / "plain"
    plain.mkdir()
    from tests.conftest import tiny_checkpoint

    with pytest.raises(ConfigError, match="trained without a cross-batch memory; resume without miner.memory.size"):
        load_training_state(step_of("miner.memory.size=64"), tiny_checkpoint(compose_cfg, plain))
