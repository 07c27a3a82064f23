"""Summarise junit xml results of the renamed TorchRL tests run under streamrl.

usage: python analyze.py RESULTS_DIR DENOMINATORS_JSON FILES_TXT [TOP_N]
RESULTS_DIR holds plain/<name>.xml and (optionally) stubbed/<name>.xml,
stubs/<name>.json.
"""

from __future__ import annotations

import collections
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

res_dir, denom_path, files_txt = sys.argv[1:4]
top_n = int(sys.argv[4]) if len(sys.argv) > 4 else 25
denoms = json.load(open(denom_path))
files = [ln.strip() for ln in open(files_txt) if ln.strip() and not ln.startswith("#")]


def key_of(f):
    return f.replace("/", "__").replace(".py", "")


def parse(xml_path):
    """Return (counts, failures, collection_error_text)."""
    counts = collections.Counter()
    fails = []  # (classname, name, kind, message, text)
    coll_err = None
    if not os.path.exists(xml_path):
        return None, [], "no junit xml (run crashed or timed out)"
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        return None, [], f"unreadable junit xml: {e}"
    for tc in root.iter("testcase"):
        kids = {c.tag: c for c in tc}
        if "error" in kids and kids["error"].get("message", "").startswith(
            "collection failure"
        ):
            coll_err = (kids["error"].text or "")[-3000:]
            continue
        if "failure" in kids:
            counts["failed"] += 1
            c = kids["failure"]
            fails.append((tc.get("classname", ""), tc.get("name", ""), "failed",
                          c.get("message", ""), c.text or ""))
        elif "error" in kids:
            counts["error"] += 1
            c = kids["error"]
            fails.append((tc.get("classname", ""), tc.get("name", ""), "error",
                          c.get("message", ""), c.text or ""))
        elif "skipped" in kids:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, fails, coll_err


def coll_cause(text):
    if text is None:
        return None
    for pat, fmt in [
        (r"cannot import name '(\w+)' from '([\w.]+)'", "ImportError: cannot import {0} from {1}"),
        (r"No module named '([\w.]+)'", "ModuleNotFoundError: {0}"),
        (r"module '([\w.]+)' has no attribute '(\w+)'", "AttributeError: {0}.{1}"),
    ]:
        m = re.search(pat, text)
        if m:
            return fmt.format(*m.groups())
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
    return (lines[-1] if lines else text.strip().splitlines()[-1])[:160]


def norm(s):
    s = re.sub(r"0x[0-9a-f]+", "0x_", s)
    s = re.sub(r"\btorch\.Size\(\[[\d, ]*\]\)", "torch.Size([..])", s)
    s = re.sub(r"\d+(\.\d+)?", "N", s)
    return s[:140]


def cause(classname, name, kind, msg, text):
    m = re.search(r"STUB ([\w.]+)", msg) or re.search(r"STUB ([\w.]+)", text)
    if m:
        # report the first two components of the stubbed object (module.Name)
        return f"missing name (stubbed): {m.group(1)}"
    m = re.search(r"cannot import name '(\w+)' from '([\w.]+)'", msg)
    if m:
        return f"ImportError: {m.group(2)}.{m.group(1)}"
    m = re.search(r"No module named '([\w.]+)'", msg)
    if m:
        return f"ModuleNotFoundError: {m.group(1)}"
    m = re.search(r"([\w.<>]+)\(\) got an unexpected keyword argument '(\w+)'", msg)
    if m:
        return f"TypeError unexpected kwarg: {m.group(1)}({m.group(2)}=)"
    m = re.search(r"module '([\w.]+)' has no attribute '(\w+)'", msg)
    if m:
        return f"AttributeError: module {m.group(1)} has no {m.group(2)}"
    m = re.search(r"'(\w+)' object has no attribute '(\w+)'", msg)
    if m:
        return f"AttributeError: {m.group(1)}.{m.group(2)}"
    m = re.search(r"type object '(\w+)' has no attribute '(\w+)'", msg)
    if m:
        return f"AttributeError: {m.group(1)}.{m.group(2)} (class attr)"
    if "object.__new__() takes exactly one argument" in msg:
        return ("TypeError: object.__new__() takes exactly one argument -> EnvBase has no __new__(cls, *args, **kwargs) "
                "(the TorchRL mock envs call super().__new__(cls, *args, **kwargs))")
    if "Timeout" in msg:
        return "Timeout (>30 s)"
    short = classname.rsplit(".", 1)[-1]
    test = name.split("[")[0]
    if msg.startswith("AssertionError") or msg.startswith("assert "):
        return f"AssertionError in {short}::{test}"
    if msg.startswith("Failed: DID NOT RAISE") or "DID NOT RAISE" in msg:
        return f"DID NOT RAISE {norm(msg.split('DID NOT RAISE',1)[1].strip())} in {short}"
    if "Regex pattern did not match" in msg:
        return f"error message mismatch in {short}::{test}"
    return norm(msg.splitlines()[0] if msg else f"{kind} (no message) in {short}::{test}")


rows = []
causes = collections.Counter()
causes_files = collections.defaultdict(set)
blockers = collections.Counter()
tot = collections.Counter()
for f in files:
    k = key_of(f)
    den = denoms.get(f, 0)
    pc, pf, perr = parse(os.path.join(res_dir, "plain", k + ".xml"))
    sc, sf, serr = parse(os.path.join(res_dir, "stubbed", k + ".xml"))
    stub_path = os.path.join(res_dir, "stubs", k + ".json")
    nstub = 0
    if os.path.exists(stub_path):
        nstub = sum(len(v) or 1 for v in json.load(open(stub_path)).values())
    row = {"file": f, "torchrl": den}
    for tag, c, err in (("plain", pc, perr), ("stub", sc, serr)):
        if c is None and tag == "stub" and not os.path.exists(os.path.join(res_dir, "stubbed")):
            continue
        if c is None:
            c = collections.Counter()
        ran = sum(c.values())
        row[tag] = dict(c)
        row[tag]["collected"] = ran
        row[tag]["not_collected"] = max(den - ran, 0)
        row[tag]["coll_err"] = coll_cause(err)
    row["nstub"] = nstub
    base_xml = os.path.join(os.path.dirname(os.path.abspath(denom_path)), "results", "torchrl", k + ".xml")
    bc, _, berr = parse(base_xml) if os.path.exists(base_xml) else (None, [], None)
    row["torchrl_run"] = dict(bc) if bc is not None and berr is None else None
    rows.append(row)
    # causes: from the stubbed run when the plain run could not be collected
    use_stub = perr is not None and sc is not None
    fails = sf if use_stub else pf
    for fl in fails:
        cz = cause(*fl)
        causes[cz] += 1
        causes_files[cz].add(os.path.basename(f))
    if perr is not None:
        blockers[coll_cause(perr) or "?"] += den
    eff = row["stub"] if use_stub else row["plain"]
    nc = eff["not_collected"]
    if nc and eff.get("coll_err"):
        causes[f"not collected even with stubs: {eff['coll_err']}"] += nc
    elif nc:
        causes["collected under TorchRL but not under streamrl (parametrization differs)"] += nc
    tot["torchrl"] += den
    tot["eff_skipped"] += eff.get("skipped", 0)
    tot["plain_passed"] += row["plain"].get("passed", 0)
    if "stub" in row:
        tot["stub_passed"] += (row["stub"] if use_stub else row["plain"]).get("passed", 0)
    else:
        tot["stub_passed"] += row["plain"].get("passed", 0)

hdr = f"{'file':42} {'torchrl':>7} | {'pass':>6} {'fail':>6} {'err':>5} {'skip':>5} {'notcoll':>7} | stubbed: {'#stub':>5} {'pass':>6} {'fail':>6} {'err':>5} {'skip':>5} {'notcoll':>7}"
print(hdr)
print("-" * len(hdr))
for r in rows:
    p = r["plain"]
    line = f"{r['file']:42} {r['torchrl']:>7} | {p.get('passed',0):>6} {p.get('failed',0):>6} {p.get('error',0):>5} {p.get('skipped',0):>5} {p['not_collected']:>7} |"
    s = r.get("stub")
    if s and r["plain"].get("coll_err"):
        line += f"          {r['nstub']:>5} {s.get('passed',0):>6} {s.get('failed',0):>6} {s.get('error',0):>5} {s.get('skipped',0):>5} {s['not_collected']:>7}"
    else:
        line += "          (collected without stubs)"
    print(line)
    if p.get("coll_err"):
        print(f"    collection error (plain): {p['coll_err']}")
den = tot["torchrl"] or 1
base_rows = [r for r in rows if r.get("torchrl_run")]
if base_rows:
    print("TorchRL 0.14.1 itself on this machine (baseline, files where it was run):")
    for r in base_rows:
        b = r["torchrl_run"]
        eff = r["stub"] if (r["plain"].get("coll_err") and "stub" in r) else r["plain"]
        print(f"    {r['file']:40} torchrl passed {b.get('passed',0)}, skipped {b.get('skipped',0)}, failed {b.get('failed',0)+b.get('error',0)}"
              f" | streamrl passed {eff.get('passed',0)} = {100*eff.get('passed',0)/max(b.get('passed',0),1):.1f}% of TorchRL's own passes")
if base_rows:
    tp = sum(r["torchrl_run"].get("passed", 0) for r in base_rows)
    sp = sum((r["stub"] if (r["plain"].get("coll_err") and "stub" in r) else r["plain"]).get("passed", 0) for r in base_rows)
    print(f"    TOTAL over {len(base_rows)} files: streamrl passes {sp} / TorchRL passes {tp} = {100*sp/max(tp,1):.1f}%")
print("-" * len(hdr))
print(f"TOTAL plain  : {tot['plain_passed']}/{tot['torchrl']} passed = {100*tot['plain_passed']/den:.1f}%")
print(f"TOTAL stubbed: {tot['stub_passed']}/{tot['torchrl']} passed = {100*tot['stub_passed']/den:.1f}%  (missing names stubbed in files that could not be collected)")
den2 = max(tot['torchrl'] - tot['eff_skipped'], 1)
print(f"TOTAL stubbed, skipped tests left out: {tot['stub_passed']}/{den2} = {100*tot['stub_passed']/den2:.1f}%  ({tot['eff_skipped']} tests skipped themselves: combination skips, no gym/cuda/zstandard/ray, same on TorchRL)")
print()
if blockers:
    print("Collection blockers (first missing name per file; tests blocked):")
    for b, n in blockers.most_common():
        print(f"  {n:>6}  {b}")
    print()
print(f"Top {top_n} causes of failing tests (effective run: stubbed where the plain run could not collect):")
for cz, n in causes.most_common(top_n):
    fl = ",".join(sorted(causes_files[cz]))[:60]
    print(f"  {n:>6}  {cz}   [{fl}]")
json.dump({"rows": rows, "total": tot, "causes": causes.most_common()},
          open(os.path.join(res_dir, "summary.json"), "w"), indent=1)
