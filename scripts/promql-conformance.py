#!/usr/bin/env python3
"""Prometheus' PromQL conformance data against `promtool test rules` and `mqtt-sentinel rules test`.

Reads the test language of Prometheus v2.42.0 `promql/testdata/*.test` (test data only, no
Prometheus code: the converter is written from the language as the data uses it), writes one
promtool unit-test case per `eval`, runs real promtool 2.42 on them for the ground truth and
`mqtt-sentinel rules test` on the same files, and prints, per upstream file: cases, skipped,
stable, agree, disagree, refused-by-us, and how many of the agreeing failures also agree in
text. Python 3 standard library only.

The mapping
-----------
* `load <step>` + series lines (`metric{l="v"} 0+10x10 _ stale 1 2`): the samples of every
  `load` since the last `clear` go into `input_series` of each later case. When all loads of a
  block share one step it is the test group's `interval`; otherwise the interval is the
  greatest common divisor of the steps and each series is spelt out on that grid with `_` for
  the instants it has no sample at. Expanding notation is expanded here (`a+bxn`: n+1 values,
  each the previous plus b, as Prometheus adds them) and written as shortest round-trip
  decimals, so promtool reads back the very same doubles.
* `eval instant at <t> <expr>` / `eval_ordered instant at …` + expected lines: one test
  group with one `promql_expr_test` (`expr`, `eval_time: <t>`, `exp_samples`); a bare number
  expects a scalar (promtool turns a scalar result into one sample without labels). promtool
  sorts both sides, so `eval_ordered` checks the set, not the order.
* `eval_fail instant at …`: the same test group without `exp_samples`; upstream expects the
  query to fail, so both tools must *fail* it (with an `err:`), and they agree when both do.
* `evaluation_interval` is the case's eval time (1m for time 0): promtool appends input
  samples only up to the last evaluation step at or before the largest `eval_time`, so with
  this interval every sample up to the eval time is loaded, as the upstream engine test has
  them (later ones are not: a negative `offset` that reads ahead sees what promtool saw).
* Only the series the case can select are loaded (their metric name occurs in the expression,
  or every series when a selector names none), so a block that mixes `load 10s` and
  `load 1ms` does not need a 1 ms grid for every series. Both tools read the same file, so
  the comparison is unaffected.
* Cases are batched: one promtool file per upstream file and eval time, each case a named test
  group; promtool prints failures as `expr: "<expr>", time: <t>, …` without the group's name,
  so a batch never holds two cases with the same expression; failures are attributed by the
  expression. A batch whose output cannot be attributed is run again case by case.

The traps
---------
* promtool compares with `reflect.DeepEqual`: an expected NaN never equals a NaN result, so a
  case that expects NaN always fails in promtool. We compare the same way; such cases are
  counted (`nan-exp`) and must fail in both.
* Some results vary in their last bit between promtool runs (aggregation over series in map
  order). promtool is run `--runs` times (3) on every file, and `--confirm-runs` times (10)
  more on a case whose verdict or text differs from ours (that case alone in a file); a case
  whose verdict or output differs between runs is dropped as unstable (flaky in promtool
  too) and counted. Our engine does not fix the order of series either (as Prometheus does
  not), so such a case is also run again under ours; when our output varies, it is unstable.
* Flag-gated features of Prometheus 2.42 (native histograms: `{{…}}` series notation and the
  `histogram_count`/`histogram_sum`/`histogram_fraction` functions on them) are skipped with a
  counted reason, as are grids too long to spell out (`--max-points`).
* Verdict: a case passes when a tool prints no failure for its expression. *Refused* means
  our engine names a construct as not supported; refusals are counted, not compared, and the
  other columns count the cases we accept: *unstable* (promtool's own verdict or output varies),
  *stable*, of those *agree* (same verdict) and *disagree* (verdicts differ). *Same text* counts the failing
  cases whose failure text is byte for byte promtool's (issue 17, class 4), on the same
  streams: promtool writes `Unit Testing:` and an empty line per failure to stdout,
  `FAILED:` and the failures to stderr; a failure of a run that splits its output otherwise
  differs in text.

`--check` exits 1 when an accepted case disagrees and is not listed in the expected
disagreements file (`--expected`, lines `<file>:<line> <reason>`), or when a listed case no
longer differs (the list must stay true). The same list holds cases both tools fail in other
words (*text-known*; unlisted ones are *text-diff*, which the CI test requires to be 0).
`--verbose` prints each disagreement and each unlisted text difference with both outputs.
"""

import argparse
import ast
import concurrent.futures
import json
import math
import os
import re
import subprocess
import sys
from collections import OrderedDict

UNITS_MS = [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)]
DUR_RE = re.compile(r"(\d+)(ms|[smhdwy])")
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
           "w": 7 * 86_400_000, "y": 365 * 86_400_000}
GATED_FUNCTIONS = ("histogram_count", "histogram_sum", "histogram_fraction")


def parse_duration(text):
    """`1h30m`, `50m`, `10s`, `1ms` → milliseconds (Prometheus' duration syntax)."""
    pos, total = 0, 0
    for m in DUR_RE.finditer(text):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += int(m.group(1)) * UNIT_MS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"bad duration {text!r}")
    return total


def show_duration(ms):
    """Milliseconds → the shortest exact duration text (`1h40m`, `90s`, `1500ms`)."""
    if ms == 0:
        return "0s"
    if ms % 1000:
        return f"{ms}ms"
    out = ""
    for unit, size in UNITS_MS[:3]:
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out


def parse_number(tok):
    """A sample value as the test language writes it (`1e3`, `-Inf`, `NaN`, `0x10`)."""
    t = tok.lstrip("+")
    low = t.lower()
    if low in ("inf", "-inf", "nan"):
        return float(low)
    if re.fullmatch(r"-?0x[0-9a-fA-F]+", t):
        return float(int(t, 16))
    return float(t)


STALE = "stale"


def expand(tokens):
    """Expanding notation → a list of values per step: float, None (`_`) or STALE."""
    out = []
    for tok in tokens:
        m = re.fullmatch(r"(.+?)x(\d+)", tok)
        base, times = (m.group(1), int(m.group(2))) if m else (tok, None)
        if base == "_":
            out.extend([None] * (times or 1))
            continue
        if base == STALE:
            if times is not None:
                raise ValueError(f"bad value {tok!r}")
            out.append(STALE)
            continue
        split = next((i for i in range(1, len(base))
                      if base[i] in "+-" and base[i - 1] not in "eE"), None)
        if split is None:
            start, step = parse_number(base), 0.0
        else:
            start, step = parse_number(base[:split]), parse_number(base[split:])
        if times is None:
            if split is not None:
                raise ValueError(f"bad value {tok!r}")
            out.append(start)
            continue
        v = start
        for _ in range(times + 1):
            out.append(v)
            v += step
    return out


def split_series(line):
    """`metric{a="b", c="d"} 1 2 3` → (`metric{a="b", c="d"}`, `1 2 3`)."""
    line = line.strip()
    brace = line.find("{")
    space = re.search(r"\s", line)
    if brace < 0 or (space and space.start() < brace):
        if not space:
            return line, ""
        return line[:space.start()], line[space.start():].strip()
    quote = None
    i = brace
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch == "}":
            return line[:i + 1], line[i + 1:].strip()
        i += 1
    raise ValueError(f"unclosed series description: {line!r}")


class Case:
    """One upstream `eval`: where it is, what it loads, what it asks and expects."""

    def __init__(self, file, line, kind, at_ms, expr, loads):
        self.file, self.line, self.kind, self.at_ms, self.expr = file, line, kind, at_ms, expr
        self.loads = loads  # [(step_ms, [(desc, tokens)])], the block's loads so far
        self.expected = []  # [(labels text, value text)]
        self.skip = None
        self.name = f"{file}:{line}"

    def nan_expected(self):
        return any(v.lower().lstrip("+-") == "nan" for _, v in self.expected)


def parse_test_file(path):
    """All cases of one `.test` file, in order."""
    name = os.path.basename(path)
    cases, loads, current, load_lines = [], [], None, None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            current, load_lines = None, None
            continue
        if line == "clear":
            loads, current, load_lines = [], None, None
            continue
        m = re.fullmatch(r"load\s+(\S+)", line)
        if m:
            load_lines = []
            loads = loads + [(parse_duration(m.group(1)), load_lines)]
            current = None
            continue
        m = re.fullmatch(r"(eval|eval_fail|eval_ordered)\s+instant\s+at\s+(\S+)\s+(.+)", line)
        if m:
            load_lines = None
            current = Case(name, no, m.group(1), parse_duration(m.group(2)), m.group(3),
                           [(s, list(ls)) for s, ls in loads])
            cases.append(current)
            continue
        if line.startswith("eval"):
            c = Case(name, no, "unknown", 0, line, [])
            c.skip = "command not in the language"
            cases.append(c)
            current, load_lines = None, None
            continue
        if load_lines is not None:
            desc, values = split_series(line)
            load_lines.append((desc, values.split()))
            continue
        if current is not None:
            if re.fullmatch(r"[-+]?(\d[\d.eE+-]*|Inf|NaN|inf|nan)", line):
                current.expected.append(("", line))
            else:
                desc, values = split_series(line)
                toks = values.split()
                if len(toks) != 1:
                    current.skip = current.skip or "expected sample with several values"
                    continue
                current.expected.append((desc, toks[0]))
            continue
        raise ValueError(f"{path}:{no}: cannot read {raw!r}")
    for c in cases:
        if c.skip:
            continue
        text = c.expr + " " + " ".join(" ".join(t) for _, ls in c.loads for _, t in ls)
        if "{{" in text or any(f + "(" in c.expr for f in GATED_FUNCTIONS):
            c.skip = "native histograms (flag-gated in 2.42)"
    return cases


def yaml_str(s):
    return "'" + s.replace("'", "''") + "'"


def show_value(v):
    if v is None:
        return "_"
    if v is STALE:
        return STALE
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    r = repr(v)
    return r[:-2] if r.endswith(".0") else r


def yaml_float(text):
    v = parse_number(text)
    if math.isnan(v):
        return ".nan"
    if math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    return repr(v)


def used_series(case):
    """Which loaded series the case can select: those whose metric name occurs in the
    expression as a word, or all when a selector may pick series without naming them."""
    if "__name__" in case.expr or re.search(r"(^|[^\w:])\{", case.expr):
        return lambda desc: True
    words = set(re.findall(r"[A-Za-z_:][\w:]*", case.expr))
    return lambda desc: split_name(desc) in words


def split_name(desc):
    m = re.match(r"[A-Za-z_:][\w:]*", desc)
    return m.group(0) if m else ""


def test_group(case, max_points):
    """The YAML of one test group for `case`, or None (and `case.skip` set)."""
    wanted = used_series(case)
    loads = [(s, [(d, t) for d, t in ls if wanted(d)]) for s, ls in case.loads]
    steps = [s for s, ls in loads if ls]
    interval = math.gcd(*steps) if steps else 60_000
    series = OrderedDict()
    for step, lines in loads:
        for desc, toks in lines:
            try:
                vals = expand(toks)
            except ValueError as e:
                case.skip = f"unreadable series values ({e})"
                return None
            pts = series.setdefault(desc, {})
            for i, v in enumerate(vals):
                if v is not None:
                    pts[i * step // interval] = v
    if sum(max(p, default=0) + 1 for p in series.values()) > max_points:
        case.skip = f"more than {max_points} points on the load grid"
        return None
    out = [f"  - name: {yaml_str(case.name)}", f"    interval: {show_duration(interval)}"]
    if series:
        out.append("    input_series:")
    for desc, pts in series.items():
        vals, gap = [], 0
        for i in range(max(pts, default=-1) + 1):
            if i not in pts:
                gap += 1
                continue
            if gap:
                vals.append("_" if gap == 1 else f"_x{gap}")
                gap = 0
            vals.append(show_value(pts[i]))
        out.append(f"      - series: {yaml_str(desc)}")
        out.append(f"        values: {yaml_str(' '.join(vals))}")
    out.append("    promql_expr_test:")
    out.append(f"      - expr: {yaml_str(case.expr)}")
    out.append(f"        eval_time: {show_duration(case.at_ms)}")
    if case.expected and case.kind != "eval_fail":
        out.append("        exp_samples:")
        for labels, value in case.expected:
            out.append(f"          - labels: {yaml_str(labels)}")
            out.append(f"            value: {yaml_float(value)}")
    return "\n".join(out) + "\n"


def batches(cases, max_points):
    """Cases → batches: [(evaluation_interval ms, [(case, yaml)])], expressions unique in each."""
    out = []
    by_interval = OrderedDict()
    for c in cases:
        if c.skip:
            continue
        y = test_group(c, max_points)
        if y is None:
            continue
        by_interval.setdefault(c.at_ms or 60_000, []).append((c, y))
    for interval, items in by_interval.items():
        bins = []
        for c, y in items:
            for b in bins:
                if all(o.expr != c.expr for o, _ in b):
                    b.append((c, y))
                    break
            else:
                bins.append([(c, y)])
        out.extend((interval, b) for b in bins)
    return out


def write_batch(path, interval, items):
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# Generated by scripts/promql-conformance.py from Prometheus v2.42.0 "
                f"promql/testdata.\nevaluation_interval: {show_duration(interval)}\ntests:\n")
        for _, y in items:
            f.write(y)


def run(cmd, cwd):
    """(exit code, stdout, stderr)."""
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


STREAMS_DIFFER = "\n[not on promtool's streams: stdout and stderr split differently]"


def streams_as_promtool(name, stdout, stderr, blocks):
    """Whether a run wrote what promtool 2.42 writes where it writes it: on stdout only
    `Unit Testing:  <file>`, then `  SUCCESS` or an empty line per failure, and an empty
    line; on stderr `  FAILED:` and the failures (`blocks`, by expression)."""
    want = f"Unit Testing:  {name}\n" + ("\n" * len(blocks) if blocks else "  SUCCESS\n") + "\n"
    if stdout != want:
        return False
    if not blocks:
        return stderr == ""
    return stderr.startswith("  FAILED:\n") and failures(stderr) == blocks


def unquote(q):
    """A Go `%q` / Rust `{:?}` string (quotes included) → its text."""
    try:
        return ast.literal_eval(q)
    except (ValueError, SyntaxError):
        return q[1:-1]


def failures(output):
    """Failure blocks by expression, or None when some line cannot be attributed."""
    blocks, current = {}, None
    for line in output.split("\n"):
        if line.startswith("    expr: "):
            rest = line[len("    expr: "):]
            if not rest.startswith('"'):
                return None
            i = 1
            while i < len(rest) and rest[i] != '"':
                i += 2 if rest[i] == "\\" else 1
            expr = unquote(rest[:i + 1])
            current = blocks.setdefault(expr, [])
            current.append(line)
        elif line.startswith("        ") and current is not None:
            current.append(line)
        elif (line.strip() in ("", "SUCCESS", "FAILED:") or line.startswith("Unit Testing:")
              or line.startswith("    name: ")):
            if line.strip() == "" or line.startswith("Unit Testing:"):
                current = None
        else:
            return None
    return {k: "\n".join(v) for k, v in blocks.items()}


def verdicts(cmd, path, exprs):
    """Runs `cmd path`; {expr: failure text or None (passed)} or None when not attributable."""
    rc, out, err = run(cmd + [os.path.basename(path)], os.path.dirname(path))
    blocks = failures(out + err)
    if blocks is None or (rc != 0 and not blocks) or (rc == 0 and blocks):
        return None
    if any(b not in exprs for b in blocks):
        return None
    # Text includes the streams: a failure written where promtool does not write it
    # differs in text (the mark is never in promtool's own output).
    if not streams_as_promtool(os.path.basename(path), out, err, blocks):
        blocks = {e: b + STREAMS_DIFFER for e, b in blocks.items()}
    return {e: blocks.get(e) for e in exprs}


def judge(batch_path, interval, items, promtool, sentinel, runs):
    """Per case: (promtool verdicts of every run, ours), splitting the batch when needed."""
    write_batch(batch_path, interval, items)
    exprs = [c.expr for c, _ in items]
    theirs = [verdicts([promtool, "test", "rules"], batch_path, exprs) for _ in range(runs)]
    ours = verdicts([sentinel, "rules", "test"], batch_path, exprs)
    if all(t is not None for t in theirs) and ours is not None:
        return [(c, [t[c.expr] for t in theirs], ours[c.expr], batch_path) for c, _ in items]
    if len(items) == 1:
        c = items[0][0]
        _, p_out, p_err = run([promtool, "test", "rules", os.path.basename(batch_path)],
                              os.path.dirname(batch_path))
        _, o_out, o_err = run([sentinel, "rules", "test", os.path.basename(batch_path)],
                              os.path.dirname(batch_path))
        return [(c, ["unattributable:\n" + p_out + p_err] * runs,
                 "unattributable:\n" + o_out + o_err, batch_path)]
    out = []
    for i, item in enumerate(items):
        out.extend(judge(f"{batch_path[:-4]}-{i}.yml", interval, [item], promtool, sentinel,
                         runs))
    return out


REFUSAL = re.compile(r"err: .*(is not supported|are not supported|unsupported|unknown function)")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--testdata", default=os.path.join(
        root, "..", "shared", "prometheus-2.42-promql-testdata"))
    ap.add_argument("--out", default=os.path.join(root, "target", "promql-conformance"))
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("--sentinel", default=os.path.join(root, "target", "debug", "mqtt-sentinel"))
    ap.add_argument("--runs", type=int, default=3, help="promtool runs per file (stability)")
    ap.add_argument("--confirm-runs", type=int, default=10,
                    help="further promtool runs on a case whose verdict or text differs from ours")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--max-points", type=int, default=200_000)
    ap.add_argument("--expected", default=os.path.join(
        root, "tests", "fixtures", "rules", "conformance-expected-disagreements.txt"))
    ap.add_argument("--only", help="only this upstream file (e.g. functions.test)")
    ap.add_argument("--json", help="write every case's outcome here")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 on an unexpected disagreement or a stale expected one")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    files = sorted(f for f in os.listdir(args.testdata) if f.endswith(".test"))
    if args.only:
        files = [f for f in files if f == args.only]
    if not files:
        sys.exit(f"no .test files in {args.testdata}")
    os.makedirs(args.out, exist_ok=True)
    for old in os.listdir(args.out):
        if old.endswith(".yml"):
            os.remove(os.path.join(args.out, old))
    all_cases, jobs = [], []
    for f in files:
        cases = parse_test_file(os.path.join(args.testdata, f))
        all_cases.extend(cases)
        for i, (interval, items) in enumerate(batches(cases, args.max_points)):
            path = os.path.join(args.out, f"{f[:-5]}-{i:03}.yml")
            jobs.append((path, interval, items))
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = [pool.submit(judge, p, iv, it, args.promtool, args.sentinel, args.runs)
                for p, iv, it in jobs]
        for fut in futs:
            for c, theirs, ours, path in fut.result():
                results[c.name] = (theirs, ours, path)

    expected = {}
    if os.path.exists(args.expected):
        with open(args.expected, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    key, _, reason = line.partition(" ")
                    expected[key] = reason.strip()

    cols = ["cases", "skipped", "refused", "unstable", "stable", "agree", "disagree",
            "nan-exp", "same-text", "text-diff", "text-known"]
    table = OrderedDict((f, dict.fromkeys(cols, 0)) for f in files)
    outcomes, unexpected, seen_expected = [], [], set()
    for c in all_cases:
        row = table[c.file]
        row["cases"] += 1
        if c.skip:
            row["skipped"] += 1
            outcomes.append({"case": c.name, "outcome": "skipped", "reason": c.skip})
            continue
        theirs, ours, path = results[c.name]
        if ours is not None and REFUSAL.search(ours):
            row["refused"] += 1
            outcomes.append({"case": c.name, "outcome": "refused", "ours": ours})
            continue
        # A verdict or text that differs from ours is confirmed by more runs before it
        # counts: a result that varies in its last bit may have looked stable three times.
        if theirs[0] != ours:
            one = f"{path[:-4]}-confirm-{c.line}.yml"
            write_batch(one, c.at_ms or 60_000, [(c, test_group(c, args.max_points))])
            more = [verdicts([args.promtool, "test", "rules"], one, [c.expr])
                    for _ in range(args.confirm_runs)]
            theirs = theirs + [m[c.expr] if m else "unattributable" for m in more]
            # Series order is not fixed in either engine: where it decides the last bit,
            # our answer varies between runs as promtool's does.
            again = [verdicts([args.sentinel, "rules", "test"], one, [c.expr])
                     for _ in range(args.confirm_runs)]
            if any((a or {}).get(c.expr, "unattributable") != ours for a in again):
                theirs = theirs + ["ours varies"]
        if any(t != theirs[0] for t in theirs) or (theirs[0] or "").startswith("unattributable"):
            row["unstable"] += 1
            outcomes.append({"case": c.name, "outcome": "unstable"})
            continue
        row["stable"] += 1
        p = theirs[0]
        if (p is None) == (ours is None):
            row["agree"] += 1
            if p is not None and c.nan_expected():
                row["nan-exp"] += 1
            if p is not None and p == ours:
                row["same-text"] += 1
            elif p is not None and c.name in expected:
                # Both fail, in words that differ: listed with its reason.
                row["text-known"] += 1
                seen_expected.add(c.name)
            elif p is not None:
                row["text-diff"] += 1
                if args.verbose:
                    print(f"--- {c.name}: {c.expr}: both fail, in other words")
                    print(f"promtool:\n{p}\nours:\n{ours}\n")
            outcomes.append({"case": c.name, "outcome": "agree", "promtool": p, "ours": ours})
            continue
        row["disagree"] += 1
        outcomes.append({"case": c.name, "outcome": "disagree", "promtool": p, "ours": ours})
        if c.name in expected:
            seen_expected.add(c.name)
            continue
        unexpected.append(c)
        if args.verbose:
            print(f"--- {c.name}: {c.expr} at {show_duration(c.at_ms)}")
            print(f"promtool: {'passes' if p is None else 'fails'}\n{p or ''}")
            print(f"ours: {'passes' if ours is None else 'fails'}\n{ours or ''}\n")

    total = dict.fromkeys(cols, 0)
    width = max(len(f) for f in files + ["total"])
    print(f"{'file':<{width}} " + " ".join(f"{c:>9}" for c in cols))
    for f, row in list(table.items()) + [("total", total)]:
        if f != "total":
            for k in cols:
                total[k] += row[k]
        print(f"{f:<{width}} " + " ".join(f"{row[c]:>9}" for c in cols))
    skip_reasons = {}
    for o in outcomes:
        if o["outcome"] == "skipped":
            skip_reasons[o["reason"]] = skip_reasons.get(o["reason"], 0) + 1
    for reason, n in sorted(skip_reasons.items()):
        print(f"skipped {n}: {reason}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(outcomes, f, indent=1)
    # A listed case that now agrees in verdict and words, or names no case, must leave the
    # list (a listed case that was unstable in this run says nothing either way).
    names = {o["case"]: o for o in outcomes}
    stale = sorted(k for k in expected
                   if k not in names
                   or (names[k]["outcome"] == "agree" and k not in seen_expected))
    for c in unexpected:
        print(f"unexpected disagreement: {c.name}: {c.expr}")
    for k in stale:
        print(f"expected disagreement no longer disagrees: {k}")
    if args.check and (unexpected or stale):
        sys.exit(1)


if __name__ == "__main__":
    main()
