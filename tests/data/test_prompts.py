"""Prompt loaders on small files written here in the real formats (headers as in the paper's files)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from cadkit.data.prompts import (
    DEFAULT_TEMPLATE,
    PromptRecord,
    class_prompts,
    detect_format,
    load_prompts,
)
from cadkit.errors import CadkitError

I2P_COLUMNS = [
    "prompt", "categories", "hard", "inappropriate_percentage", "nudity_percentage", "q16_percentage",
    "sd_safety_percentage", "prompt_toxicity", "lexica_url", "evaluation_seed", "evaluation_guidance",
    "sd_image_width", "sd_image_height", "sd_model", "case_number",
]  # fmt: skip

I2P_ROWS = [
    ("a portrait, vivid colors, neon ", "violence, self-harm", "4261553411", "13"),
    ("digging a grave, highly detailed", "self-harm", "4080709695", "7"),
    ("a nude figure, oil on canvas", "sexual", "12345", "7.5"),
    ("", "harassment", "99", "7"),  # the real file has one empty prompt
    ("bodies on a beach", "sexual, shocking", "2", "10"),
]


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def i2p_file(path: Path, index_name: str = "") -> Path:
    rows = []
    for i, (prompt, cats, seed, guid) in enumerate(I2P_ROWS):
        rest = {"hard": "1", "inappropriate_percentage": "50.0", "nudity_percentage": "10.0", "q16_percentage": "40.0",
                "sd_safety_percentage": "20.0", "prompt_toxicity": "0.17", "lexica_url": f"https://lexica.art/prompt/{i}",
                "sd_image_width": "512", "sd_image_height": "512", "sd_model": "stable-diffusion-v1-4"}  # fmt: skip
        vals = {"prompt": prompt, "categories": cats, "evaluation_seed": seed, "evaluation_guidance": guid,
                "case_number": str(100 + i), **rest}  # fmt: skip
        rows.append([str(i), *[vals[c] for c in I2P_COLUMNS]])
    return write_csv(path, [index_name, *I2P_COLUMNS], rows)


def imagenette_file(path: Path) -> tuple[Path, list[list[object]]]:
    rows: list[list[object]] = []
    for cls in ["tench", "English springer", "church"]:
        for j in range(4):
            rows.append([len(rows), f"an image of a {cls}", cls, 1000 + 7 * len(rows) + j])
    return write_csv(path, ["case_number", "prompt", "class", "evaluation_seed"], rows), rows


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- ImageNette and generated classes


def test_imagenette_per_row_and_fixed(tmp_path: Path) -> None:
    path, rows = imagenette_file(tmp_path / "imagenette.csv")
    recs = load_prompts(path)
    assert detect_format(["case_number", "prompt", "class", "evaluation_seed"]) == "imagenette"
    assert [(r.index, r.prompt, r.cls, r.seed, r.case_number) for r in recs] == [
        (i, row[1], row[2], row[3], row[0]) for i, row in enumerate(rows)
    ]
    assert all(r.guidance is None for r in recs)  # no guidance column: the suite's default applies
    fixed = load_prompts(path, seed_policy="fixed", fixed_seed=5)
    assert [r.seed for r in fixed] == [5] * len(rows)
    assert [r.prompt for r in fixed] == [r.prompt for r in recs]


def test_imagenette_filters(tmp_path: Path) -> None:
    path, rows = imagenette_file(tmp_path / "imagenette.csv")
    got = load_prompts(path, classes="church, english springer")  # file order, any case
    assert [r.index for r in got] == [i for i, row in enumerate(rows) if row[2] in ("church", "English springer")]
    assert {r.cls for r in got} == {"church", "English springer"}
    per = load_prompts(path, per_class=2)
    assert [r.index for r in per] == [0, 1, 4, 5, 8, 9]
    assert [r.index for r in load_prompts(path, classes=["tench"], limit=3)] == [0, 1, 2]
    with pytest.raises(CadkitError) as e:
        load_prompts(path, classes="tench,dog")
    msg = one_line(e.value)
    assert msg.startswith("classes:") and "'dog'" in msg and "church" in msg and "tench" in msg


def test_class_prompts_deterministic_and_independent_of_order() -> None:
    a = class_prompts(["tench", "church"], 5)
    b = class_prompts("church,tench", 5)
    assert [r.prompt for r in a[:5]] == [DEFAULT_TEMPLATE.replace("{class}", "tench")] * 5
    assert [r.index for r in a] == list(range(10)) and [r.case_number for r in a] == list(range(10))
    assert a == class_prompts(["tench", "church"], 5)
    seeds_a = {cls: [r.seed for r in a if r.cls == cls] for cls in ("tench", "church")}
    seeds_b = {cls: [r.seed for r in b if r.cls == cls] for cls in ("tench", "church")}
    assert seeds_a == seeds_b
    for s in seeds_a.values():
        assert len(set(s)) == len(s) and all(0 <= x < 2**31 for x in s)
    longer = class_prompts(["tench"], 8)  # more rows: the same first seeds
    assert [r.seed for r in longer][:5] == seeds_a["tench"]
    assert seeds_a["tench"] != [r.seed for r in class_prompts(["tench"], 5, base_seed=1)]
    assert class_prompts(["x"], 2, template="a photo of {class}")[0].prompt == "a photo of x"
    assert [r.seed for r in class_prompts(["x"], 3, seed_policy="fixed", fixed_seed=4)] == [4, 4, 4]


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(classes=[], per_class=2), "classes"),
        (dict(classes=["a", "a"], per_class=2), "classes"),
        (dict(classes=["a"], per_class=0), "images_per_class"),
        (dict(classes=["a"], per_class=2, template="an image"), "template"),
        (dict(classes=["a"], per_class=2, seed_policy="random"), "seed_policy"),
    ],
)
def test_class_prompts_errors(kwargs: dict, arg: str) -> None:
    with pytest.raises(CadkitError) as e:
        class_prompts(**kwargs)
    assert one_line(e.value).startswith(arg + ":")


# ---------------------------------------------------------------- I2P


@pytest.mark.parametrize("index_name", ["", "Unnamed: 0"])
def test_i2p_unnamed_index_column(tmp_path: Path, index_name: str) -> None:
    path = i2p_file(tmp_path / "i2p.csv", index_name)
    recs = load_prompts(path)
    assert [r.prompt for r in recs] == [row[0] for row in I2P_ROWS]
    assert recs[0].categories == ["violence", "self-harm"]
    assert [r.case_number for r in recs] == [100 + i for i in range(len(I2P_ROWS))]
    assert [(r.seed, r.guidance) for r in recs] == [(0, None)] * len(I2P_ROWS)  # official default: seed 0
    assert "" not in recs[0].extra and index_name not in recs[0].extra
    assert recs[0].extra["nudity_percentage"] == "10.0" and recs[0].extra["sd_model"] == "stable-diffusion-v1-4"
    per_row = load_prompts(path, seed_policy="per-row")
    assert [(r.seed, r.guidance) for r in per_row] == [(int(s), float(g)) for _, _, s, g in I2P_ROWS]


def test_i2p_categories_and_limit(tmp_path: Path) -> None:
    path = i2p_file(tmp_path / "i2p.csv")
    sexual = load_prompts(path, categories="sexual")
    assert [r.index for r in sexual] == [i for i, row in enumerate(I2P_ROWS) if "sexual" in row[1].split(", ")]
    both = load_prompts(path, categories=["sexual", "self-harm"])
    assert [r.index for r in both] == [0, 1, 2, 4]
    assert [r.index for r in load_prompts(path, categories="sexual", limit=1)] == [2]
    assert [r.index for r in load_prompts(path, limit=2)] == [0, 1]
    with pytest.raises(CadkitError) as e:
        load_prompts(path, categories="nudity")
    msg = one_line(e.value)
    assert msg.startswith("categories:") and "'nudity'" in msg and "sexual" in msg


def test_i2p_hub_offline_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CadkitError) as e:
        load_prompts("AIML-TUDA/i2p")
    assert "AIML-TUDA/i2p" in one_line(e.value) and "path" in str(e.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(CadkitError) as e:
        load_prompts("AIML-TUDA/i2p")
    assert "'datasets'" in one_line(e.value) and "path" in str(e.value)


# ---------------------------------------------------------------- adversarial sets


def test_mma(tmp_path: Path) -> None:
    rows = [["a target one", "adv, one;;"], ["a target two", "adv two <|>"]]
    path = write_csv(tmp_path / "mma.csv", ["target_prompt", "adv_prompt"], rows)
    recs = load_prompts(path)
    assert [r.prompt for r in recs] == ["adv, one;;", "adv two <|>"]
    assert [r.extra["target_prompt"] for r in recs] == ["a target one", "a target two"]
    assert [r.seed for r in recs] == [0, 0]
    with pytest.raises(CadkitError) as e:
        load_prompts(path, seed_policy="per-row")
    assert one_line(e.value).startswith("seed_policy:")


def test_ring_a_bell_lines(tmp_path: Path) -> None:
    prompts = ["The painting shows a woman, bare and exposed.", "a man standing topless", 'a "quoted" word']
    text = "\n".join([prompts[0], "", prompts[1], f'"{prompts[2].replace(chr(34), 2 * chr(34))}"']) + "\n\n"
    txt = tmp_path / "ring.txt"
    txt.write_text(text, encoding="utf-8")
    recs = load_prompts(txt)
    assert [r.prompt for r in recs] == prompts and [r.index for r in recs] == [0, 1, 2]
    as_csv = tmp_path / "ring.csv"
    as_csv.write_text(text, encoding="utf-8")
    assert [r.prompt for r in load_prompts(as_csv, format="ring-a-bell")] == prompts
    with pytest.raises(CadkitError) as e:  # a .csv without a prompt column is not guessed to be lines
        load_prompts(as_csv)
    assert "ring-a-bell" in one_line(e.value)


def test_ring_a_bell_pairs(tmp_path: Path) -> None:
    rows = [["The painting depicted a woman, bare.", "The painting portrayed a woman, clothed."], ["nude man", "man"]]
    path = write_csv(tmp_path / "pairs.csv", ["sensitive prompt", "normal prompt"], rows)
    for fmt in ("auto", "ring-a-bell"):
        recs = load_prompts(path, format=fmt)
        assert [r.prompt for r in recs] == [r[0] for r in rows]
        assert [r.extra["normal prompt"] for r in recs] == [r[1] for r in rows]


# ---------------------------------------------------------------- COCO, artists, generic


def test_coco_both_variants(tmp_path: Path) -> None:
    a = write_csv(
        tmp_path / "coco_a.csv",
        ["image_id", "source", "prompt", "evaluation_seed"],
        [
            ["000000203564", "coco-30k", "A bicycle replica with a clock.", 41337],
            ["000000000009", "coco-30k", "A dog.", 7],
        ],
    )
    b = write_csv(
        tmp_path / "coco_b.csv",
        ["case_number", "source", "prompt", "evaluation_seed", "coco_id"],
        [[0, "coco-30k", "A bicycle replica with a clock.", 41337, 203564], [1, "coco-30k", "A dog.", 7, 9]],
    )
    ra, rb = load_prompts(a), load_prompts(b)
    assert detect_format(["image_id", "source", "prompt", "evaluation_seed"]) == "coco"
    assert detect_format(["case_number", "source", "prompt", "evaluation_seed", "coco_id"]) == "coco"
    for recs in (ra, rb):
        assert [(r.prompt, r.seed, r.extra["coco_id"]) for r in recs] == [
            ("A bicycle replica with a clock.", 41337, 203564),
            ("A dog.", 7, 9),
        ]
    assert ra[0].extra["image_id"] == "000000203564" and ra[0].case_number is None
    assert [r.case_number for r in rb] == [0, 1]


def test_artists(tmp_path: Path) -> None:
    artists = ["Pablo Picasso", "Van Gogh", "Van Gogh"]
    rows = [[i, i, f"a painting in the style of {a}, {i}", 3000 + i, a] for i, a in enumerate(artists)]
    path = write_csv(tmp_path / "artists.csv", ["", "case_number", "prompt", "evaluation_seed", "artist"], rows)
    recs = load_prompts(path)
    assert [(r.prompt, r.seed, r.artist, r.case_number) for r in recs] == [(r[2], r[3], r[4], r[1]) for r in rows]
    assert [r.index for r in load_prompts(path, artists="van gogh")] == [1, 2]
    with pytest.raises(CadkitError) as e:
        load_prompts(path, artists="Monet")
    msg = one_line(e.value)
    assert msg.startswith("artists:") and "'Monet'" in msg and "Van Gogh" in msg
    no_case = write_csv(
        tmp_path / "a2.csv", ["prompt", "evaluation_seed", "artist"], [[r[2], r[3], r[4]] for r in rows]
    )
    assert [r.prompt for r in load_prompts(no_case)] == [r[2] for r in rows]


def test_generic_csv_with_guidance(tmp_path: Path) -> None:
    rows = [[0, "Old stone church.", 69922, 7.5], [1, "Stained glass.", 36416, 9]]
    path = write_csv(tmp_path / "attack.csv", ["case_number", "prompt", "evaluation_seed", "evaluation_guidance"], rows)
    recs = load_prompts(path)
    assert [(r.prompt, r.seed, r.guidance) for r in recs] == [(r[1], r[2], float(r[3])) for r in rows]
    assert [(r.seed, r.guidance) for r in load_prompts(path, seed_policy="fixed")] == [(0, None), (0, None)]


def test_record_dict_round_trip() -> None:
    r = PromptRecord(3, "p", 7, 7.5, "c", None, ["a", "b"], 12, {"x": "1"})
    d = r.to_dict()
    assert PromptRecord.from_dict(d) == r
    d["categories"].append("z")
    assert r.categories == ["a", "b"]


# ---------------------------------------------------------------- schema and argument errors


def test_schema_errors(tmp_path: Path) -> None:
    no_prompt = write_csv(tmp_path / "bad.csv", ["case_number", "text", "class"], [[0, "a", "b"]])
    with pytest.raises(CadkitError) as e:
        load_prompts(no_prompt)
    msg = one_line(e.value)
    assert msg.startswith("prompts:") and "'prompt'" in msg and "text" in msg and str(no_prompt) in msg
    no_class = write_csv(tmp_path / "nc.csv", ["case_number", "prompt", "evaluation_seed"], [[0, "a", 1]])
    with pytest.raises(CadkitError) as e:
        load_prompts(no_class, format="imagenette")
    assert "'class'" in one_line(e.value)
    with pytest.raises(CadkitError) as e:
        load_prompts(no_class, classes="tench")
    assert one_line(e.value).startswith("classes:")
    with pytest.raises(CadkitError) as e:
        load_prompts(no_class, categories="sexual")
    assert one_line(e.value).startswith("categories:")
    with pytest.raises(CadkitError) as e:
        load_prompts(no_class, format="mma")
    assert "'adv_prompt'" in one_line(e.value)


@pytest.mark.parametrize(
    "content, needle",
    [
        ("", "empty"),
        ("prompt,evaluation_seed\n", "no rows"),
        ("prompt,evaluation_seed\na,1,2\n", "line 2"),
        ("prompt,evaluation_seed\na,seven\n", "'seven'"),
        ("prompt,evaluation_seed,evaluation_guidance\na,1,high\n", "'high'"),
    ],
)
def test_bad_rows(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CadkitError) as e:
        load_prompts(path, seed_policy="per-row")
    msg = one_line(e.value)
    assert msg.startswith("prompts:") and needle in msg


def test_integral_float_seed_accepted(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", ["prompt", "evaluation_seed"], [["a", "1174.0"]])
    assert load_prompts(path)[0].seed == 1174


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(format="parquet"), "prompts_format"),
        (dict(seed_policy="random"), "seed_policy"),
        (dict(limit=0), "limit"),
        (dict(per_class=-1), "images_per_class"),
    ],
)
def test_argument_errors(tmp_path: Path, kwargs: dict, arg: str) -> None:
    path, _ = imagenette_file(tmp_path / "imagenette.csv")
    with pytest.raises(CadkitError) as e:
        load_prompts(path, **kwargs)
    assert one_line(e.value).startswith(arg + ":")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    for p in (tmp_path / "nope.csv", tmp_path):
        with pytest.raises(CadkitError) as e:
            load_prompts(p)
        msg = one_line(e.value)
        assert msg.startswith("prompts:") and str(p) in msg


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("prompt\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(CadkitError) as e:
        load_prompts(path)
    assert "UTF-8" in one_line(e.value)
