"""The README is a front door: what it names exists, and the docs it points to are there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recsys.parts import PARTS

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
NUMBERS = {"five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def template_functions() -> set[str]:
    return set(re.findall(r"^  ([A-Za-z]+Function):$", (ROOT / "template.yaml").read_text(), re.MULTILINE))


def test_the_readme_is_short() -> None:
    assert len(README.splitlines()) <= 200


def test_every_make_target_the_readme_names_exists() -> None:
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README))  # as commands are written: in backticks
    assert named and named <= make_targets(), named - make_targets()


def test_every_function_the_readme_names_exists_and_every_api_function_is_named() -> None:
    named = set(re.findall(r"\b([A-Z][a-z]+Function)\b", README))
    assert named <= template_functions(), named - template_functions()
    assert template_functions() - {"TrainFunction"} <= named


def test_the_model_parts_the_docs_name_are_the_parts() -> None:
    # the architecture's diagram lists every part, and the README counts them
    listed = re.search(r"\{([a-z_,]+)\}\.pkl", (ROOT / "docs" / "ARCHITECTURE.md").read_text())
    assert listed and listed.group(1).split(",") == list(PARTS)
    text = README + (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    counted = re.findall(r"\b(five|six|seven|eight|nine) parts\b", text)
    assert counted and all(NUMBERS[n] == len(PARTS) for n in counted)


def test_every_document_and_picture_the_readme_links_to_exists() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links and [link for link in links if not (ROOT / link).is_file()] == []
