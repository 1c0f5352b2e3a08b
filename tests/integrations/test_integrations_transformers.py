"""The Hugging Face Trainer (CPU build of PyTorch) trains a tiny BERT, built from a config
in code (nothing from a hub), for real through ModelboxCallback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelbox import ModelBoxClient
from modelbox.ingest import Watcher
from modelbox.names import parse_model

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never reach a hub
TORCH_MISSING = ("torch is not installed: scripts/test.sh installs the CPU build "
                 "(torch==2.13.0) only on Python 3.11, where pip finds it on this disk")
pytest.importorskip("torch", reason=TORCH_MISSING)
pytest.importorskip("transformers", reason="transformers is not installed "
                    "(pip install 'modelbox-registry[transformers]')")

import torch  # noqa: E402  # after the skips
import transformers  # noqa: E402

from modelbox.integrations.transformers import ModelboxCallback  # noqa: E402

pytestmark = pytest.mark.frameworks


class Rows(torch.utils.data.Dataset):  # type: ignore[misc]  # torch is typed as Any here
    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int) -> dict[str, Any]:
        ids = torch.randint(0, 50, (8,), generator=torch.Generator().manual_seed(index))
        return {"input_ids": ids, "attention_mask": torch.ones(8, dtype=torch.long),
                "labels": torch.tensor(int(ids[0]) % 2)}


def test_train_records_arguments_logs_events_and_each_checkpoint_folder_loadable_again(
    registry_path: Path, tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=8,
        logging_steps=1, save_strategy="epoch", eval_strategy="epoch", save_total_limit=1,
        report_to=[], use_cpu=True, disable_tqdm=True, learning_rate=1e-3)
    callback = ModelboxCallback("exp/hf-run", registry_path, hyperparameters={"data": "rows"})
    transformers.Trainer(model=model, args=args, train_dataset=Rows(), eval_dataset=Rows(),
                         callbacks=[callback]).train()

    with ModelBoxClient(registry_path) as client:
        experiment = client.experiment("exp/hf-run")
        params = experiment.metadata
        assert (params["learning_rate"], params["num_train_epochs"]) == (1e-3, 2)
        assert (params["model"], params["data"]) == ("BertForSequenceClassification", "rows")
        series = experiment.metrics()
        assert [p["step"] for p in series["loss"]] == list(range(1, 9))
        assert [p["step"] for p in series["eval_loss"]] == [4, 8]
        checkpoints = experiment.checkpoints()
        assert [(c.id, c.epoch, c.step) for c in checkpoints] == [
            ("exp/hf-run@checkpoint-4", 1, 4), ("exp/hf-run@checkpoint-8", 2, 8)]
        assert "eval_loss" in checkpoints[-1].metrics()
        names = [e.name for e in experiment.events()]
        assert names.count("epoch_end") == 2 and names.count("checkpoint_ingested") == 2
        assert {e.source for e in experiment.events()} == {"transformers"}
        # Recorded as `experiment watch` records it: a watcher of the output folder finds
        # checkpoint-8 ingested already (same source, same fingerprint).
        assert checkpoints[-1].metadata["ingest"]["layout"] == "huggingface"
        assert Watcher(client.registry, parse_model("exp/hf-run"), tmp_path / "out").poll() == []
        assert len(experiment.checkpoints()) == 2
    # save_total_limit=1 removed checkpoint-4 from the disk; the registry has it.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["checkpoint-8"]

    modelbox = str(Path(sys.executable).with_name("modelbox"))
    for name in ("checkpoint-4", "checkpoint-8"):  # the folder's files, as the watcher does
        done = subprocess.run([modelbox, "get", f"exp/hf-run@{name}", "-o",
                               str(tmp_path / name), "-q"], cwd=registry_path,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / name / "trainer_state.json").is_file()
    loaded = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path / "checkpoint-8")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
