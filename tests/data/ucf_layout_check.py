"""A shared assertion for generated datasets in the UCF-101 layout."""

from __future__ import annotations


def check_ucf_layout(root, classes: list[str]) -> tuple[list[list[str]], list[str]]:
    """Assert that ``root`` is a complete UCF-101-layout dataset of ``classes`` (split 1) whose train
    and test lists name every video once, with labels in class order and no group in both lists.
    Returns the parsed ``(train, test)`` lines."""
    import re
    from pathlib import Path

    root = Path(root)
    lists = root / "ucfTrainTestlist"
    assert (lists / "classInd.txt").read_text().splitlines() == [f"{i} {c}" for i, c in enumerate(classes, 1)]
    train = [line.split() for line in (lists / "trainlist01.txt").read_text().splitlines()]
    test = (lists / "testlist01.txt").read_text().splitlines()
    pattern = re.compile(r"^(\w+)/v_\1_g(\d\d)_c(\d\d)\.avi$")
    train_groups, test_groups = set(), set()
    for rel, label in train:
        m = pattern.match(rel)
        assert m, rel
        assert classes[int(label) - 1] == m.group(1)
        train_groups.add((m.group(1), m.group(2)))
    for rel in test:
        m = pattern.match(rel)
        assert m and len(rel.split()) == 1, rel
        test_groups.add((m.group(1), m.group(2)))
    assert not train_groups & test_groups
    assert {c for c, _ in test_groups} == set(classes)
    videos = root / "videos"
    on_disk = {str(p.relative_to(videos)) for p in videos.rglob("*") if p.is_file()}
    assert {r for r, _ in train} | set(test) == on_disk
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".ds.tmp")]
    return train, test
