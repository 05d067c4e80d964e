"""The paper's hub dataset, through the same load_dataset call, on a local copy of its
layout (the hub is unreachable here): configs arxiv / github / general, their split names
and columns (general's text column is `content`)."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import llmunlearn as ul
from llmunlearn.data.corpus import hub_documents, load_splits

LAYOUT = {
    "arxiv": ("forget", "approximate", "retain"),
    "github": ("forget", "approximate", "retain"),
    "general": ("evaluation", "retain"),
}


@pytest.fixture
def hub_copy(tmp_path):
    root = tmp_path / "unlearn_dataset"
    yaml = ["---", "configs:"]
    for config, splits in LAYOUT.items():
        yaml.append(f"- config_name: {config}\n  data_files:")
        column = "content" if config == "general" else "text"
        for split in splits:
            path = root / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            texts = [f"{config} {split} document {i} " * 20 for i in range(3)]
            pq.write_table(pa.table({column: texts}), path)
            yaml.append(f"  - split: {split}\n    path: {config}/{split}-*.parquet")
    yaml.append("---")
    (root / "README.md").write_text("\n".join(yaml) + "\n")
    return root


def test_each_config_and_split_maps_to_documents(hub_copy):
    for config, splits in LAYOUT.items():
        for split in splits:
            docs = hub_documents(config, split, str(hub_copy))
            assert len(docs) == 3 and docs[0].text.startswith(f"{config} {split} document 0")


def test_a_profile_can_point_at_the_hub_dataset(hub_copy):
    p = ul.get_profile("smoke", dataset=str(hub_copy))
    splits = load_splits("general", p)
    assert set(splits) == {"evaluation", "retain"}


def test_books_and_unknown_splits_are_errors(hub_copy):
    with pytest.raises(ValueError, match="no 'books' config"):
        hub_documents("books", "forget", str(hub_copy))
    with pytest.raises(ValueError, match="unknown split of arxiv 'train'"):
        hub_documents("arxiv", "train", str(hub_copy))
