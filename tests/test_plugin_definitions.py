"""The Meltano plugin definitions and docs/configuration.md match `--about`.

scripts/generate_plugin_definitions.py writes them, and these tests run it in
check mode. They also compare the files with `--about` directly, with a kind
mapping of their own, so that a bug in the generator cannot hide a mismatch.
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "scripts" / "generate_plugin_definitions.py"
HUB_PATH = ROOT / "hub" / "loaders" / "target-customergauge-stream.yml"
MELTANO_PATH = ROOT / "meltano.yml"
CONFIGURATION_DOC_PATH = ROOT / "docs" / "configuration.md"
PLUGIN_NAME = "target-customergauge-stream"

EXPECTED_GROUPS = [["api_key"], ["client_id", "client_secret"]]
# Capabilities that the Singer SDK 0.54 reports but that the meltano.yml
# schema bundled with Meltano 4.4.1 does not list for loaders. The newer
# schema that check-jsonschema 0.39.0 vendors lists them.
CAPABILITIES_MISSING_FROM_MELTANO_SCHEMA = {"validate-records"}


def run_generator(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def expected_kind(schema: dict[str, t.Any]) -> str:
    """Meltano kind for a setting, written independently of the generator."""
    if schema.get("secret"):
        return "password"
    if "enum" in schema:
        return "options"
    types = [name for name in schema["type"] if name != "null"]
    if len(types) > 1:
        # Meltano casts only strings by kind, so string passes the others.
        assert "string" in types
        return "string"
    return {"number": "decimal"}.get(types[0], types[0])


@pytest.fixture(scope="module")
def about() -> dict[str, t.Any]:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "target_customergauge_stream.target",
            "--about",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def about_settings(about: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    return about["settings"]["properties"]


def read_yaml(path: Path) -> t.Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def project_loader() -> dict[str, t.Any]:
    project = read_yaml(MELTANO_PATH)
    loaders = project["plugins"]["loaders"]
    return next(loader for loader in loaders if loader["name"] == PLUGIN_NAME)


@pytest.fixture(
    scope="module", params=["hub definition", "meltano.yml loader"], name="plugin"
)
def plugin_definition(request: pytest.FixtureRequest) -> dict[str, t.Any]:
    if request.param == "hub definition":
        return read_yaml(HUB_PATH)
    return project_loader()


def test_generated_files_up_to_date() -> None:
    completed = run_generator("--check")
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    shutil.copy(MELTANO_PATH, tmp_path / "meltano.yml")
    shutil.copytree(ROOT / "hub", tmp_path / "hub")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    project = tmp_path / "meltano.yml"
    project.write_text(
        project.read_text(encoding="utf-8").replace("value: 2000\n", "value: 1000\n"),
        encoding="utf-8",
    )
    (tmp_path / "docs" / "configuration.md").unlink()

    completed = run_generator("--check", "--root", str(tmp_path))

    assert completed.returncode == 1
    assert "+      value: 2000" in completed.stdout
    assert "-      value: 1000" in completed.stdout
    assert "+++ docs/configuration.md (generated)" in completed.stdout
    assert "2 generated files are out of date" in completed.stderr
    assert "value: 1000" in project.read_text(encoding="utf-8")


def test_settings_same_names_as_about(
    plugin: dict[str, t.Any], about_settings: dict[str, t.Any]
) -> None:
    names = [setting["name"] for setting in plugin["settings"]]
    missing = sorted(set(about_settings) - set(names))
    extra = sorted(set(names) - set(about_settings))
    assert not missing, f"settings in --about but not in the file: {missing}"
    assert not extra, f"settings in the file but not in --about: {extra}"
    assert len(names) == len(set(names)), "a setting is listed twice"


def test_settings_kinds_match_about(
    plugin: dict[str, t.Any], about_settings: dict[str, t.Any]
) -> None:
    for setting in plugin["settings"]:
        schema = about_settings[setting["name"]]
        assert setting["kind"] == expected_kind(schema), setting["name"]


def test_settings_defaults_match_about(
    plugin: dict[str, t.Any], about_settings: dict[str, t.Any]
) -> None:
    for setting in plugin["settings"]:
        schema = about_settings[setting["name"]]
        if "default" in schema:
            assert setting.get("value") == schema["default"], setting["name"]
        else:
            assert "value" not in setting, setting["name"]


def test_settings_labels_and_descriptions(
    plugin: dict[str, t.Any], about_settings: dict[str, t.Any]
) -> None:
    for setting in plugin["settings"]:
        schema = about_settings[setting["name"]]
        assert setting["label"] == schema["title"], setting["name"]
        assert setting["description"] == schema["description"], setting["name"]


def test_secrets_are_sensitive(
    plugin: dict[str, t.Any], about_settings: dict[str, t.Any]
) -> None:
    secrets = {name for name, schema in about_settings.items() if schema.get("secret")}
    sensitive = {
        setting["name"] for setting in plugin["settings"] if setting.get("sensitive")
    }
    assert secrets == {"api_key", "client_secret", "ledger_url"}
    assert sensitive == secrets


def test_options_match_enum(
    plugin: dict[str, t.Any], about_settings: dict[str, t.Any]
) -> None:
    for setting in plugin["settings"]:
        schema = about_settings[setting["name"]]
        values = [option["value"] for option in setting.get("options", [])]
        assert values == schema.get("enum", []), setting["name"]
        for option in setting.get("options", []):
            assert option["label"], setting["name"]


def test_authentication_groups(plugin: dict[str, t.Any]) -> None:
    assert plugin["settings_group_validation"] == EXPECTED_GROUPS


def test_capabilities_match_about(
    plugin: dict[str, t.Any], about: dict[str, t.Any]
) -> None:
    assert plugin["capabilities"] == about["capabilities"]


def test_hub_definition_fields() -> None:
    definition = read_yaml(HUB_PATH)
    assert definition["name"] == PLUGIN_NAME
    assert definition["namespace"] == "target_customergauge_stream"
    assert definition["pip_url"] == "target-customergauge-stream"
    assert definition["executable"] == PLUGIN_NAME
    assert definition["variant"]
    assert definition["label"]
    assert definition["keywords"]
    assert "logo_url" not in definition


def test_configuration_doc_lists_every_setting(
    about: dict[str, t.Any], about_settings: dict[str, t.Any]
) -> None:
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in CONFIGURATION_DOC_PATH.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    }
    assert sorted(rows) == sorted(about_settings)
    for name, schema in about_settings.items():
        variable = f"TARGET_CUSTOMERGAUGE_STREAM_{name.upper()}"
        assert f"`{variable}`" in rows[name], name
        if "default" in schema:
            assert f"`{json.dumps(schema['default'])}`" in rows[name], name


def test_meltano_project_matches_meltano_schema() -> None:
    schema_text = (
        importlib.resources.files("meltano.schemas")
        .joinpath("meltano.schema.json")
        .read_text(encoding="utf-8")
    )
    schema = json.loads(schema_text)
    project = read_yaml(MELTANO_PATH)
    for loader in project["plugins"]["loaders"]:
        loader["capabilities"] = [
            capability
            for capability in loader.get("capabilities", [])
            if capability not in CAPABILITIES_MISSING_FROM_MELTANO_SCHEMA
        ]
    validator_class = jsonschema.validators.validator_for(schema)
    errors = [
        f"{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator_class(schema).iter_errors(project)
    ]
    assert errors == []
