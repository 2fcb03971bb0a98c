"""The training loop: no host read of the loss between evaluations, prefetched and padded batches, the
precision and compile options (issue 24 items 1 and 4)."""

from __future__ import annotations

import pytest
import torch

from workbench.config import TrainConfig, preset
from workbench.data.biography_data import BiographyData
from workbench.data.kinds import PAD
from workbench.experiment import train
from workbench.metrics import next_token_loss
from workbench.model import build_model, context_length
from workbench.run import load_run
from workbench.training.loop import BatchPrefetcher, Callback, TrainState, padded, resolve_precision

READS = ("item", "__float__", "tolist", "numpy", "cpu", "to", "__bool__", "__index__", "__int__")


class _Recorder(Callback):
    """Records at which step every host read of the training loss happens (the step that is ending)."""

    def __init__(self):
        self.current, self.reads, self.tracked, self.state = 0, [], [], None

    def on_train_start(self, state):
        self.current, self.state = state.step, state

    def on_step_start(self, state):
        self.current = state.step + 1

    def on_step_end(self, state):  # the loss tensors of this step: the last loss and the running sum (kept alive,
        self.tracked = [state._last_loss, state._loss_total]  # so that no other tensor reuses their ids)


@pytest.fixture
def loss_reads(monkeypatch):
    recorder = _Recorder()
    for name in READS:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            if any(self is t for t in recorder.tracked):
                recorder.reads.append((recorder.current, _name))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return recorder


def test_the_loop_reads_the_loss_only_at_evaluations_and_checkpoints(tmp_path, loss_reads):
    cfg = preset("tiny", train={"steps": 20, "eval_every": 5, "checkpoint_steps": (0, 8, 20)})
    train(cfg, tmp_path / "r", progress=True, callbacks=[loss_reads])  # the progress bar too
    read_at = {step for step, _ in loss_reads.reads}
    assert read_at and read_at <= {5, 8, 10, 15, 20}, loss_reads.reads  # evaluations; 8: the checkpoint's loop state
    assert loss_reads.state.host_reads == len(loss_reads.reads) == 5  # one read per evaluation or checkpoint
    assert list(load_run(tmp_path / "r").metrics["step"]) == [0, 5, 10, 15, 20]


def test_the_device_loss_sum_is_the_host_sum_bit_for_bit():
    state = TrainState(None, None, None, None)
    losses = torch.rand(50, dtype=torch.float32) * 7
    host = 0.0
    for x in losses:
        state.record_loss(x)
        host += x.item()
    assert state.loss_sum == host and state.loss_count == 50 and state.loss == losses[-1].item()
    state.loss_sum, state.loss_count = 0.0, 0  # what an evaluation does
    state.record_loss(losses[0])
    assert state.loss_sum == losses[0].item()


def test_prefetched_batches_are_the_steps_batches(tiny_config):
    data = BiographyData(tiny_config)
    ahead = BatchPrefetcher(data.train_batch, 3, 9, depth=2, device="cpu")
    for step in range(3, 7):
        got, want = ahead.get(step), data.train_batch(step)
        assert all(torch.equal(getattr(got, f), getattr(want, f)) for f in ("tokens", "kind", "attribute"))
    ahead.close()  # stopped early: the thread ends
    assert ahead.thread is None


class _Built:
    def __init__(self, step):
        self.step = step

    def to(self, device, non_blocking=False):
        return self


def test_a_prefetch_error_is_raised_on_the_training_thread():
    def make(step):
        if step == 2:
            raise ValueError("bad batch 2")
        return _Built(step)

    ahead = BatchPrefetcher(make, 0, 5, depth=2, device="cpu")
    assert ahead.get(0).step == 0 and ahead.get(1).step == 1
    with pytest.raises(ValueError, match="bad batch 2"):
        ahead.get(2)
    ahead.close()


def test_padding_to_a_multiple_stays_within_the_context_and_keeps_the_loss(tiny_config):
    data = BiographyData(tiny_config)
    n_ctx = context_length(tiny_config.model, data.max_length)  # n_ctx=0: the longest possible biography
    model = build_model(tiny_config.model, data.tokenizer.vocab_size, n_ctx, 0)
    batch = data.train_batch(0)
    t = batch.tokens.shape[1]
    p = padded(batch, 8, n_ctx, data.tokenizer.pad_id)
    assert p.tokens.shape[1] == min(-(-t // 8) * 8, n_ctx) >= t
    assert (p.kind[:, t:] == PAD).all() and (p.tokens[:, t:] == data.tokenizer.pad_id).all()
    assert padded(batch, 1024, n_ctx, data.tokenizer.pad_id).tokens.shape[1] == n_ctx  # never past n_ctx
    with torch.no_grad():
        a, b = next_token_loss(model(batch.tokens), batch), next_token_loss(model(p.tokens), p)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_padded_run_with_prefetch_off_trains_like_the_default(tmp_path):
    cfg = preset("tiny", train={"steps": 10, "eval_every": 5, "n_checkpoints": 1})
    train(cfg, tmp_path / "a", progress=False)
    train(cfg.replace(train={"pad_multiple": 8, "prefetch": 0}), tmp_path / "b", progress=False)
    a, b = load_run(tmp_path / "a").metrics, load_run(tmp_path / "b").metrics
    torch.testing.assert_close(
        torch.tensor(b["training_loss"].values),
        torch.tensor(a["training_loss"].values),
        rtol=1e-4,
        atol=1e-5,
        equal_nan=True,
    )


@pytest.mark.parametrize("field,value", [("precision", "bf16"), ("precision", "fp16"), ("compile", True)])
def test_cuda_only_options_are_refused_on_cpu_before_any_work(tmp_path, field, value):
    cfg = preset("tiny", train={field: value, "device": "cpu"})
    with pytest.raises(ValueError, match=rf"^train\.{field}=.* is out of range on cpu: allowed"):
        train(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_precision_resolves_to_fp32_on_cpu():
    assert resolve_precision(TrainConfig(), "cpu") is None
    assert resolve_precision(TrainConfig(precision="fp32"), "cpu") is None


@pytest.mark.parametrize(
    "field,value",
    [
        ("precision", "fp8"),
        ("tf32", 1),
        ("compile", "yes"),
        ("pad_multiple", -1),
        ("pad_multiple", 2048),
        ("prefetch", -1),
        ("optimizer_every", -2),
        ("optimizer_every", 1.5),
    ],
)
def test_bad_loop_options_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^train\.{field}={value!r} is out of range: allowed"):
        TrainConfig(**{field: value})


def test_a_config_without_the_new_fields_loads_with_the_defaults(tiny_config):
    d = tiny_config.to_dict()
    for name in ("precision", "tf32", "compile", "pad_multiple", "prefetch", "optimizer_every"):
        del d["train"][name]
    assert type(tiny_config).from_dict(d) == tiny_config


@pytest.mark.parametrize(
    "precision,bf16,expected",
    [
        ("auto", True, torch.bfloat16),
        ("auto", False, torch.float16),
        ("fp16", True, torch.float16),
        ("fp32", True, None),
        ("bf16", True, torch.bfloat16),
    ],
)
def test_precision_resolves_on_a_gpu(monkeypatch, precision, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    assert resolve_precision(TrainConfig(precision=precision), "cuda") == expected


def test_bf16_on_a_gpu_without_it_is_one_line_naming_the_field(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    with pytest.raises(
        ValueError,
        match=r"^train\.precision='bf16' is out of range on Tesla V100 \(no bf16\): "
        r"allowed auto \| fp16 \| fp32$",
    ):
        resolve_precision(TrainConfig(precision="bf16"), "cuda")


def test_adamw_is_fused_on_cuda_only(tiny_config):
    from workbench.training.loop import make_optimizer

    model = build_model(tiny_config.model, 97, 40, 0)
    assert make_optimizer(model, tiny_config.train, "cuda").defaults["fused"] is True
    assert not make_optimizer(model, tiny_config.train, "cpu").defaults.get("fused")


@pytest.mark.slow  # dynamo traces the step: ~10-20 CPU-seconds
def test_the_compiled_loop_equals_eager_within_tolerance(tmp_path, monkeypatch):
    """train.compile is refused on CPU (inductor does not pay there); its loop path is checked here with dynamo and
    AOT autograd but no code generation (backend aot_eager): the same metrics within float32 tolerance."""
    import workbench.training.loop as loop
    import workbench.training.session as session

    cfg = preset("tiny", train={"steps": 10, "eval_every": 5, "n_checkpoints": 1})
    train(cfg, tmp_path / "eager", progress=False)
    monkeypatch.setattr(session, "check_compile", lambda cfg, device: None)
    monkeypatch.setattr(loop, "compiled", lambda model: torch.compile(model, backend="aot_eager"))
    train(cfg.replace(train={"compile": True}), tmp_path / "compiled", progress=False)
    a, b = load_run(tmp_path / "eager").metrics, load_run(tmp_path / "compiled").metrics
    for column in ("training_loss", "attribute_loss", "heldout_attribute_loss"):
        torch.testing.assert_close(
            torch.tensor(b[column].values), torch.tensor(a[column].values), rtol=1e-4, atol=1e-5, equal_nan=True
        )
