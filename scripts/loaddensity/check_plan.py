#!/usr/bin/env python3
"""Checks action JSON plans with LoadDensity itself, without running any of them.

    python check_plan.py [-v] PLAN...     (run with the interpreter that has je-load-density installed)

For each file it goes through the same steps LoadDensity's executor takes before it
calls a command, and stops short of the call:
  1. read   executor.settings.read_json  (je_load_density.utils.json.json_file.json_file.read_action_json,
            the reader `execute_files` and the CLI use: UTF-8 without BOM, any error wrapped)
  2. list   executor.settings.rules.extract  (the "load_density" key, non-empty list)
  3. bind   executor.settings.parser.bind(action, executor.registry.resolve) for every action
            (known command name, [name], [name, {kwargs}] or [name, [args]]),
            then the arguments are bound to the command's real signature (what the call would
            reject with a TypeError)
  4. lint   je_load_density.utils.linter.lint_action_file
Errors from steps 1-3 and lint findings of severity "error" fail the file; warnings are counted.
Prints one line per file ("OK ..." or "FAIL ..."); with -v also every finding. Exit 1 if any failed.
"""

import argparse
import importlib
import inspect
import signal
import sys
from collections import Counter


def real_command(command):
    """LoadDensity registers most commands as lazy wrappers (module, attribute in the closure);
    return the function they would import, so its signature can be checked."""
    code = getattr(command, "__code__", None)
    cells = getattr(command, "__closure__", None) or ()
    if code is not None and set(code.co_freevars) == {"module", "attribute"}:
        values = dict(zip(code.co_freevars, (c.cell_contents for c in cells)))
        try:
            return getattr(importlib.import_module(values["module"]), values["attribute"])
        except Exception:  # an optional dependency is missing: keep the wrapper
            return command
    return command


def check_file(path, executor, lint_action_file):
    """Returns (errors, warnings, summary) for one plan file."""
    errors, warnings = [], []
    try:
        document = executor.settings.read_json(path)
    except Exception as error:  # the reader wraps everything in LoadDensityTestJsonException
        return ["read: %s" % error], [], ""
    try:
        actions = executor.settings.rules.extract(document)
    except Exception as error:
        return ["document: %s" % error], [], ""
    actions = actions or []

    tasks = 0
    for index, action in enumerate(actions):
        where = "actions[%d]" % index
        if not isinstance(action, list) or not action:
            errors.append("%s: not a non-empty list" % where)
            continue
        try:
            bound = executor.settings.parser.bind(action, executor.registry.resolve)
        except Exception as error:
            errors.append("%s: %s" % (where, error))
            continue
        try:
            inspect.signature(real_command(bound.command)).bind(*bound.args, **bound.kwargs)
        except TypeError as error:
            errors.append("%s: %s arguments: %s" % (where, bound.name, error))
        except ValueError:
            pass  # no signature available (builtin): nothing to check
        if bound.name == "LD_start_test":
            t = bound.kwargs.get("tasks")
            if isinstance(t, dict) and isinstance(t.get("tasks"), list):
                tasks += len(t["tasks"])
            elif isinstance(t, (list, dict)):
                tasks += len(t)

    try:
        findings = lint_action_file(path)
    except Exception as error:
        errors.append("lint: %s" % error)
        findings = []
    for f in findings:
        text = "%s %s: %s%s" % (f["severity"], f["rule"], f["message"],
                                " (%s)" % f["location"] if f.get("location") else "")
        (errors if f["severity"] == "error" else warnings).append(text)
    rules = Counter(f["rule"] for f in findings if f["severity"] != "error")
    summary = "%d action(s), %d task(s)" % (len(actions), tasks)
    if rules:
        summary += ", warnings: " + ", ".join("%s x%d" % kv for kv in sorted(rules.items()))
    return errors, warnings, summary


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check action JSON plans with LoadDensity (nothing is run).")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every finding")
    ap.add_argument("plans", nargs="+", metavar="PLAN")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head

    from je_load_density.utils.executor.action_executor import executor
    from je_load_density.utils.linter import lint_action_file

    failed = 0
    for path in args.plans:
        errors, warnings, summary = check_file(path, executor, lint_action_file)
        if errors:
            failed += 1
            print("FAIL %s: %s%s" % (path, errors[0], " (+%d more)" % (len(errors) - 1) if len(errors) > 1 else ""))
        else:
            print("OK   %s: %s" % (path, summary))
        if args.verbose:
            for line in errors:
                print("    error: %s" % line)
            for line in warnings:
                print("    %s" % line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
