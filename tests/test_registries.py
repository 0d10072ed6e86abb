"""The registries are the one list of names: the config schema, the CLI and the workflow agree with them.

Adding a field, teacher or scene source is one registry entry plus its module;
this test fails if the schema (what the dry run accepts) lists other names.
"""

from __future__ import annotations

import yaml

from tests.conftest import REPO

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_schema_fields_are_the_field_registry():
    from n3f.fields import FIELDS
    from n3f.train.config import FIELD_DEFAULTS

    enum = SCHEMA["$defs"]["field"]["enum"]
    assert enum == list(FIELDS) and set(enum) == set(FIELD_DEFAULTS)
    assert SCHEMA["properties"]["fields"]["items"] == {"$ref": "#/$defs/field"}
    assert SCHEMA["properties"]["scenes"]["items"]["properties"]["fields"]["items"] == {"$ref": "#/$defs/field"}


def test_schema_teachers_are_the_teacher_registry():
    from n3f.teachers.registry import TEACHERS

    assert SCHEMA["properties"]["teachers"]["items"]["properties"]["name"]["enum"] == list(TEACHERS)


def test_schema_sources_are_the_source_registry():
    from n3f.scene.sources import source_names

    assert SCHEMA["properties"]["scenes"]["items"]["properties"]["source"]["enum"] == list(source_names())


def test_cli_choices_come_from_the_registries():
    """``n3f pretrain-rgb --field`` offers exactly the registered fields."""
    import argparse

    from n3f.commands import train
    from n3f.fields import FIELDS

    parser = argparse.ArgumentParser()
    train.add_parser(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    field = next(a for a in sub.choices["pretrain-rgb"]._actions if a.dest == "field")
    assert list(field.choices) == list(FIELDS)


def test_config_reference_is_current():
    """config/README.md is generated from the settings' definitions: regenerate it after changing one."""
    from n3f.config_docs import render

    current = (REPO / "config" / "README.md").read_text()
    assert current == render(), "config/README.md is out of date: python -m n3f.config_docs > config/README.md"


def test_schema_tasks_are_the_task_registry_and_commands():
    import argparse

    from n3f.commands import tasks
    from n3f.tasks.defaults import TASKS

    assert SCHEMA["$defs"]["task"]["enum"] == list(TASKS)
    assert SCHEMA["properties"]["tasks"]["default"] == list(TASKS)
    parser = argparse.ArgumentParser()
    tasks.add_parser(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    # the workflow runs task T as `n3f eval-T`
    assert [TASKS[t] for t in TASKS] == [f"eval-{t}" for t in TASKS] and set(TASKS.values()) <= set(sub.choices)
