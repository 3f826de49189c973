"""The core's text sources and post-processors: splits, bad files, and every gate's reason."""

from __future__ import annotations

import json

import pytest

from aigc_core import Content, ConfigError, DataError
from aigc_core.builtin.text_post import (Blocklist, BlocklistParams, Dedupe, DedupeParams, Length, LengthParams,
                                         Normalize, RedactPII, Repetition)
from aigc_core.builtin.text_sources import PythonDocs, TextFiles, TextFilesParams, TextParams
from aigc_core.store.config import build_params


def files_source(**kw) -> TextFiles:
    return TextFiles(build_params(TextFilesParams, kw, "data"))


def test_contiguous_split_is_first_90_percent_then_last_10(tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    (tmp_path / "t.txt").write_text(text)
    src = files_source(path=str(tmp_path / "t.txt"))
    assert src.split("train").text == text[:900]
    assert src.split("val").text == text[900:]
    assert len(src.split("test")) == 0
    assert src.info["chars"] == {"train": 900, "val": 100, "test": 0}


def test_folder_reads_sorted_files_as_documents(tmp_path):
    for name, body in (("b.txt", "second doc"), ("a.txt", "first doc"), ("skip.bin", "x")):
        (tmp_path / name).write_text(body)
    src = files_source(path=str(tmp_path), val_fraction=0.0)
    assert list(src.split("train")) == ["first doc", "second doc"]


def test_jsonl_field_and_shuffle_split_is_deterministic(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"document {i}", "id": i}) for i in range(40)) + "\n")
    a = files_source(path=str(path), field="text", split_mode="shuffle", val_fraction=0.25)
    b = files_source(path=str(path), field="text", split_mode="shuffle", val_fraction=0.25)
    assert list(a.split("val")) == list(b.split("val"))
    assert len(a.split("val")) == 10 and len(a.split("train")) == 30
    assert set(a.split("val")) | set(a.split("train")) == {f"document {i}" for i in range(40)}


def test_jsonl_with_field_missing_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n\n{"body": "no text field"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:3: no field 'text'"):
        files_source(path=str(path), field="text").setup()


def test_jsonl_bad_json_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON"):
        files_source(path=str(path), field="text").setup()


def test_empty_text_file_is_refused_by_name(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match=r"empty\.txt: empty text file"):
        files_source(path=str(tmp_path / "empty.txt")).setup()


def test_binary_file_is_refused_by_name(tmp_path):
    (tmp_path / "blob.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DataError, match=r"blob\.txt: binary file"):
        files_source(path=str(tmp_path / "blob.txt")).setup()
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.txt: not utf-8 text \(bad byte at offset 3\)"):
        files_source(path=str(tmp_path / "latin.txt")).setup()


def test_missing_path_and_missing_key(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        files_source(path=str(tmp_path / "nope.txt")).setup()
    with pytest.raises(ConfigError, match=r"^data\.path: missing"):
        build_params(TextFilesParams, {}, "data")


def test_python_docs_ships_real_text_and_max_chars_cuts_it():
    src = PythonDocs(build_params(TextParams, {"max_chars": 20000}, "data"))
    assert src.info["chars"]["train"] == 18000 and src.info["chars"]["val"] == 2000
    full = PythonDocs()
    assert sum(full.info["chars"].values()) > 300_000
    assert "def" in full.split("train").text


def test_text_sources_meet_the_data_source_contract(tmp_path):
    from aigc_core.testing import check_data_source

    (tmp_path / "a.txt").write_text("Some words of text. " * 50)
    check_data_source(PythonDocs, {"max_chars": 5000, "batch_size": 4})
    check_data_source(TextFiles, {"path": str(tmp_path / "a.txt"), "batch_size": 4})


# -- post-processors -----------------------------------------------------------------------------


def content(*texts: str) -> Content:
    return Content.from_data("text", texts)


def test_normalize_unicode_and_whitespace():
    out = Normalize()(content("  \uff21 caf\u0065\u0301\t\tok  \n\n\n\nend  "))
    assert out.items[0].data == "A caf\u00e9 ok\n\nend"
    assert out.items[0].meta["postprocess"][0]["normalize"]["changed"] is True


def test_dedupe_exact_and_near_with_reasons():
    base = "The quick brown fox jumps over the lazy dog near the river bank today."
    out = Dedupe()(content(base, base.upper(), base.replace("today", "today!"), "Something else entirely."))
    assert [i.data for i in out.items] == [base, "Something else entirely."]
    reasons = [i.meta["dropped"]["reason"] for i in out.dropped]
    assert reasons[0] == "exact duplicate of item 0"
    assert reasons[1].startswith("near duplicate of item 0")
    exact_only = Dedupe(DedupeParams(near=False))(content(base, base.replace("today", "today!")))
    assert len(exact_only) == 2


def test_length_gate():
    gate = Length(build_params(LengthParams, {"min_chars": 5, "max_words": 3}, "postprocess[0]"))
    out = gate(content("hey", "just right here", "one two three four"))
    assert [i.data for i in out.items] == ["just right here"]
    assert [i.meta["dropped"]["by"] for i in out.dropped] == ["length", "length"]
    assert "min_chars 5" in out.dropped[0].meta["dropped"]["reason"]
    with pytest.raises(ConfigError, match=r"postprocess\[0\]\.max_chars"):
        build_params(LengthParams, {"min_chars": 10, "max_chars": 5}, "postprocess[0]")


def test_blocklist_words_and_regexes_from_file(tmp_path):
    path = tmp_path / "block.txt"
    path.write_text("# comment\nDarn\nre:\\bfoo\\d+\n")
    gate = Blocklist(build_params(BlocklistParams, {"path": str(path)}, "postprocess[0]"))
    out = gate(content("darn it", "darning socks", "a foo42 b", "fine"))
    assert [i.data for i in out.items] == ["darning socks", "fine"]
    assert [i.meta["dropped"]["reason"] for i in out.dropped] == ["matched blocklist entry 'Darn'",
                                                                  "matched blocklist entry 're:\\\\bfoo\\\\d+'"]
    with pytest.raises(ConfigError, match=r"postprocess\[0\]\.path: no such file"):
        build_params(BlocklistParams, {"path": str(tmp_path / "none.txt")}, "postprocess[0]")
    (tmp_path / "bad.txt").write_text("re:(unclosed\n")
    with pytest.raises(ConfigError, match=r"bad regex at .*bad\.txt:1"):
        build_params(BlocklistParams, {"path": str(tmp_path / "bad.txt")}, "postprocess[0]")


def test_redact_pii_replaces_by_tags_and_counts():
    text = ("Mail jane.doe+x@example.co.uk or call +1 (555) 123-4567; card 4111 1111 1111 1111, "
            "not 1234 5678 9012 3456; server 192.168.0.1 and fe80:0:0:0:202:b3ff:fe1e:8329. Year 2024.")
    out = RedactPII()(content(text))
    red = out.items[0].data
    assert "jane" not in red and "4111" not in red and "192.168" not in red and "555" not in red
    assert "[EMAIL]" in red and "[CARD]" in red and "[IP]" in red and "[PHONE]" in red
    assert "Year 2024" in red  # a lone number is not a phone
    counts = out.items[0].meta["postprocess"][0]["redact-pii"]
    assert counts["EMAIL"] == 1 and counts["CARD"] == 1 and counts["IP"] == 2


def test_repetition_gate_drops_loops_and_keeps_prose():
    prose = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
             "it was the age of foolishness, it was the epoch of belief.")
    loop = "the king the king the king " * 12
    chars = "abcabc" * 30
    out = Repetition()(content(prose, loop, chars, "short"))
    assert [i.data for i in out.items] == [prose, "short"]
    assert all(i.meta["dropped"]["reason"].startswith("repetitive") for i in out.dropped)


@pytest.mark.parametrize("cls,params", [(Normalize, {}), (Dedupe, {}), (Length, {"min_chars": 3}),
                                        (Blocklist, {"words": ["the"]}), (RedactPII, {}), (Repetition, {})])
def test_text_postprocessors_meet_the_contract(cls, params):
    from aigc_core.testing import check_postprocessor

    check_postprocessor(cls, "text", params)


def test_tiny_shakespeare_split_matches_nanogpt():
    import os
    from pathlib import Path

    data = os.environ.get("AIGC_DATA_DIR")
    path = Path(data or "") / "text" / "tinyshakespeare.txt"
    if not data or not path.is_file():
        pytest.skip("AIGC_DATA_DIR is not set to the shared data (text/tinyshakespeare.txt)")
    from aigc_core.store.config import load_config

    cfg = load_config("configs/text-shakespeare.yaml")[0]["data"]
    assert Path(cfg["path"]).resolve() == path.resolve()  # the config finds it through AIGC_DATA_DIR
    src = files_source(path=str(path))
    text = path.read_text()
    n = int(len(text) * 0.9)  # nanoGPT's prepare.py cut
    assert src.split("train").text == text[:n] and src.split("val").text == text[n:]
