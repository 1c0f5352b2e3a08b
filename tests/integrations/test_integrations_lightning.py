"""PyTorch Lightning (CPU build of PyTorch) trains a tiny model for real through
ModelboxCallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelbox import ModelBoxClient

TORCH_MISSING = ("torch is not installed: scripts/test.sh installs the CPU build "
                 "(torch==2.13.0) only on Python 3.11, where pip finds it on this disk")
pytest.importorskip("torch", reason=TORCH_MISSING)
pytest.importorskip("lightning", reason="Lightning is not installed "
                    "(pip install 'modelbox-registry[lightning]')")

import lightning.pytorch as pl  # noqa: E402  # after the skips
import torch  # noqa: E402

from modelbox.integrations.lightning import ModelboxCallback  # noqa: E402

pytestmark = [
    pytest.mark.frameworks,
    # Lightning's own warnings about a toy run (one worker, few batches) and its pytree use.
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore:.*treespec, LeafSpec.*:FutureWarning"),
]


class Tiny(pl.LightningModule):  # type: ignore[misc]  # lightning is typed as Any here
    def __init__(self, hidden: int = 8, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, 1))

    def training_step(self, batch: Any, index: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _data() -> Any:
    torch.manual_seed(0)
    x = torch.rand(64, 4)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    return torch.utils.data.DataLoader(data, batch_size=16)


def test_fit_records_hparams_logged_metrics_events_and_every_checkpoint_file_written(
    registry_path: Path, tmp_path: Path,
) -> None:
    callback = ModelboxCallback("exp/lightning-run", registry_path,
                                hyperparameters={"dataset": "sums"})
    # save_top_k=1 (the default) deletes each older file as the next is written: every
    # one of them is still ingested.
    trainer = pl.Trainer(max_epochs=3, callbacks=[callback], default_root_dir=tmp_path,
                         logger=False, log_every_n_steps=1, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    module = Tiny()
    trainer.fit(module, _data(), _data())

    with ModelBoxClient(registry_path) as client:
        experiment = client.experiment("exp/lightning-run")
        params = experiment.metadata
        assert (params["hidden"], params["lr"], params["max_epochs"]) == (8, 0.05, 3)
        assert (params["model"], params["dataset"]) == ("Tiny", "sums")
        series = experiment.metrics()
        assert [p["step"] for p in series["train_loss"]] == list(range(1, 13))
        assert [p["step"] for p in series["val_loss"]] == [4, 8, 12]  # no sanity check
        checkpoints = experiment.checkpoints()
        assert [(c.id, c.epoch, c.step) for c in checkpoints] == [
            (f"exp/lightning-run@epoch-{e}-step-{4 * (e + 1)}", e, 4 * (e + 1))
            for e in range(3)]
        assert [a.path for a in checkpoints[0].artifacts()] == ["epoch=0-step=4.ckpt"]
        assert checkpoints[0].metadata["ingest"]["layout"] == "lightning"  # as a watcher
        assert "val_loss" in checkpoints[-1].metrics()
        names = [e.name for e in experiment.events()]
        assert names.count("epoch_start") == 3 and names.count("checkpoint_ingested") == 3
        assert names[0] == "train_start" and "train_end" in names  # uploads may end later
        checkpoints[-1].download_artifacts(tmp_path / "got")
    on_disk = list((tmp_path / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in on_disk] == ["epoch=2-step=12.ckpt"]  # the others were rotated

    loaded = Tiny.load_from_checkpoint(tmp_path / "got" / "epoch=2-step=12.ckpt")
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
