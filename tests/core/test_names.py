"""Names of models, versions and tags, and the references that combine them."""

from __future__ import annotations

import pytest

from modelbox.errors import InvalidNameError
from modelbox.names import (
    DEFAULT_NAMESPACE,
    ModelName,
    Reference,
    check_segment,
    parse_model,
    parse_namespace,
    parse_reference,
)


@pytest.mark.parametrize(
    "segment", ["yolo", "v1", "YOLO-4", "a.b", "a_b", "1", "resnet50.v2", "x" * 128]
)
def test_valid_segments_are_accepted(segment: str) -> None:
    assert check_segment("version", segment) == segment


@pytest.mark.parametrize(
    ("segment", "rule"),
    [
        ("", "must not be empty"),
        ("..", "must not start with '.'"),
        ("a..b", "must not contain '..'"),
        (".hidden", "must not start with '.'"),
        ("x.lock", "must not end with '.lock'"),
        ("x.", "must not end with '.'"),
        ("a/b", "must not contain '/'"),
        ("a b", "only letters, digits"),
        ("a\tb", "control characters"),
        ("a\nb", "control characters"),
        ("a\x7fb", "control characters"),
        ("a@b", "only letters, digits"),
        ("a:b", "only letters, digits"),
        ("a~1", "only letters, digits"),
        ("a^b", "only letters, digits"),
        ("a*b", "only letters, digits"),
        ("a?b", "only letters, digits"),
        ("a[b", "only letters, digits"),
        ("a\\b", "only letters, digits"),
        ("a$b", "only letters, digits"),
        ("a;b", "only letters, digits"),
        ("-x", "must start with a letter or digit"),
        ("_x", "must start with a letter or digit"),
        ("x" * 129, "at most 128 characters"),
    ],
)
def test_invalid_segments_are_refused_naming_the_rule(segment: str, rule: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_segment("tag", segment)
    assert rule in str(info.value)
    assert repr(segment) in str(info.value)
    assert info.value.kind == "tag"
    assert info.value.value == segment


def test_a_bare_name_lives_in_the_default_namespace() -> None:
    assert DEFAULT_NAMESPACE == "default"
    assert parse_model("yolo") == ModelName("default", "yolo")
    assert str(parse_model("yolo")) == "default/yolo"
    assert parse_model("default/yolo") == parse_model("yolo")


def test_namespaces_nest() -> None:
    name = parse_model("ai/vision/yolo")
    assert (name.namespace, name.name) == ("ai/vision", "yolo")
    assert name.parts == ("ai", "vision", "yolo")
    assert str(name) == "ai/vision/yolo"


def test_a_name_is_taken_relative_to_a_given_namespace() -> None:
    assert parse_model("yolo", "ai/vision/") == ModelName("ai/vision", "yolo")
    assert parse_model("yolo", "/ai/vision") == ModelName("ai/vision", "yolo")
    assert parse_model("v2/yolo", "ai") == ModelName("ai/v2", "yolo")
    assert parse_model("yolo", "") == ModelName("default", "yolo")


@pytest.mark.parametrize(
    "value",
    ["", "/yolo", "yolo/", "ai//yolo", "../x", "ai/../x", "ai/.hidden/x", "a..b",
     "x.lock", "ns/x.lock", "a b", "a\x01b", "x.", "ai/vision@v1/yolo", "a:b", "a@b"],
)
def test_invalid_model_names_are_refused(value: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_model(value)


def test_at_and_colon_in_a_model_name_are_refused_saying_they_name_a_version() -> None:
    for value in ("yolo@v1", "yolo:prod"):
        with pytest.raises(InvalidNameError, match="'@' or ':'"):
            parse_model(value)


@pytest.mark.parametrize("value", ["", "/", "a//b", "../x", "a/.b", "a/b.lock"])
def test_invalid_namespaces_are_refused(value: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_namespace(value)


def test_namespace_slashes_around_are_ignored() -> None:
    assert parse_namespace("/ai/vision/") == "ai/vision"


def test_model_at_version_names_a_version() -> None:
    ref = parse_reference("ai/vision/yolo@v1")
    assert ref == Reference(ModelName("ai/vision", "yolo"), version="v1")
    assert ref.tag is None
    assert str(ref) == "ai/vision/yolo@v1"


def test_model_colon_tag_names_a_tagged_version() -> None:
    ref = parse_reference("ai/vision/yolo:production")
    assert ref == Reference(ModelName("ai/vision", "yolo"), tag="production")
    assert ref.version is None
    assert str(ref) == "ai/vision/yolo:production"


def test_a_bare_reference_names_a_model_in_the_default_namespace() -> None:
    ref = parse_reference("yolo")
    assert ref == Reference(ModelName("default", "yolo"))
    assert str(ref) == "default/yolo"
    assert str(parse_reference("yolo:prod")) == "default/yolo:prod"


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("yolo@v1:prod", "not both"),
        ("yolo:prod@v1", "not both"),
        ("yolo@", "must not be empty"),
        ("yolo:", "must not be empty"),
        ("@v1", "must not be empty"),
        (":prod", "must not be empty"),
        ("a@b@c", "'@' or ':'"),
        ("yolo:a/b", "must not contain '/'"),
        ("yolo@v1.lock", "'.lock'"),
        ("yolo@..", "must not start with '.'"),
    ],
)
def test_malformed_references_are_refused_naming_the_rule(value: str, rule: str) -> None:
    with pytest.raises(InvalidNameError, match=rule.replace(".", r"\.")):
        parse_reference(value)
