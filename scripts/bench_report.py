"""Helper of scripts/bench: turns the raw measurements into the markdown report.

    python3 bench_report.py META RESULTS PGBENCH_OUT REPORT_MD

META         key=value lines written by scripts/bench (machine, sizes, memory, correctness; the
             files of the checks and of the lookup's plan)
RESULTS      tab-separated rows of bench.result: name, run, rows, ms, result of the statement
PGBENCH_OUT  pgbench's standard output (absent when only the protected-table section ran)
REPORT_MD    where the report is written (it is also printed)

Every measurement's statement returns a count that must equal its row count (all values sealed,
opened, keys created, erased, rows deleted, lookups and exports that found the right row); any
difference is a wrong result, and so is a failed check (bench.checks: name, ok, detail). Exits 1
when there is a wrong result or a failure, 0 otherwise: the targets are information only.
Standard library only.
"""

import re
import statistics
import sys

# name -> (label, [(baseline name, short label)])
ROWS = [
    ("floor", "floor: `count(length(email))`", []),
    ("md5", "floor: `md5(email)`", []),
    ("hmac", "pgcrypto `hmac(email, key, 'sha256')`", []),
    ("encrypt", "pgcrypto `encrypt(convert_to(email, 'UTF8'), key32, 'aes')`", []),
    ("decrypt", "pgcrypto `convert_from(decrypt(aes, key32, 'aes'), 'UTF8')`", []),
    ("pgp_encrypt", "pgcrypto `pgp_sym_encrypt(email, pass)`", []),
    ("pgp_decrypt", "pgcrypto `pgp_sym_decrypt(pgp, pass)`", []),
    ("seal", "**`shred.seal(subject, email, 'bench.email')`, warm**",
     [("encrypt", "encrypt"), ("pgp_encrypt", "pgp_sym_encrypt"), ("md5", "md5")]),
    ("seal_purpose", "**`shred.seal(subject, email, 'bench.email', 'bench_stats')`, warm: under each subject's purpose DEK**",
     [("encrypt", "encrypt"), ("seal", "seal (default DEK)")]),
    ("has_consent", "**`shred.has_consent(subject, 'bench_mail')`, once per subject (every other one has consent; each answer checked)**",
     [("hmac", "hmac")]),
    ("open", "**`shred.open(v, 'bench.email')`, warm**",
     [("decrypt", "decrypt"), ("pgp_decrypt", "pgp_sym_decrypt"), ("md5", "md5")]),
    ("decrypt_cold", "pgcrypto decrypt, cold (new connection, first statement)", []),
    ("open_cold", "**`shred.open`, cold (new connection, first statement)**",
     [("decrypt_cold", "decrypt cold"), ("open", "open warm")]),
    ("decrypt_cold_1", "pgcrypto decrypt of 1 row, new connection, first statement", []),
    ("open_cold_1", "**`shred.open` of 1 row, new connection, first statement**",
     [("decrypt_cold_1", "decrypt 1 row cold")]),
    ("insert", "plain `INSERT` of key-shaped rows (bigint, text unique, bytea 61, int, timestamptz)", []),
    ("first_seal", "**first `shred.seal('new:' \\|\\| g, 'x')` of new subjects (creates their keys)**",
     [("insert", "INSERT")]),
    ("create_seal", "**`shred.create_keys(array of N new subjects)`, then `shred.seal` of each**",
     [("insert", "INSERT")]),
    ("delete", "plain `DELETE … WHERE subject = ANY(array)`, one statement", []),
    ("delete_loop", "plain `DELETE … WHERE subject = $1`, one statement per row (PL/pgSQL loop)", []),
    ("erase", "**`shred.erase(subject)` of N subjects, one transaction**",
     [("delete", "DELETE"), ("delete_loop", "DELETE loop")]),
    ("erase_array", "**`shred.erase(subjects text[])` of N subjects, one statement**",
     [("delete", "DELETE")]),
    ("retention", "**retention: N purpose DEKs past their retention erased by one batch (`shred._retention_batch`)**",
     [("delete", "DELETE"), ("erase_array", "erase(text[])")]),
]


# Protected-table section: operation -> (label, unit, what each variant runs, targets). Results
# are named p_<operation>_<variant>, variant plain / hand (pgcrypto by hand) / shred (pg_shred).
# A target (variant, x): pg_shred takes at most x times the time of that variant.
PROTECT_OPS = [
    ("insert", "INSERT … SELECT of new customers (new subjects)", "row",
     "`INSERT INTO t SELECT … FROM generate_series` of fresh ids · with `encrypt()` ×4 + `hmac()` · "
     "into the view (a new DEK per subject)",
     [("hand", 1.5), ("plain", 6)]),
    ("update", "UPDATE one column (city) by id range", "row",
     "`UPDATE t SET city = …` · `SET city = encrypt(…)` · through the view", [("hand", 1)]),
    ("delete", "DELETE by id range", "row", "`DELETE FROM t WHERE id BETWEEN …` · the same · through the view",
     [("plain", 3)]),
    ("select", "SELECT all columns, aggregated in SQL", "row",
     "`count(*), sum(length(…))` of the four columns · of `convert_from(decrypt(…))` · of the view",
     [("hand", 1)]),
    ("lookup", "lookup by e-mail, one row, PL/pgSQL loop", "call",
     "`WHERE email = $1` (btree) · `WHERE email_hmac = hmac(lower(trim($1)), …)` (btree), decrypted · "
     "the view `WHERE id IN (SELECT id … WHERE email_bidx = …)`",
     [("plain", 2)]),
    ("export", "export of one subject", "call",
     "`to_jsonb(row)` by primary key · the same of the decrypted row · `shred.export_subject('customer:' || id)`",
     [("plain", 10)]),
    ("erase", "erasure of a one-row subject, all in one transaction", "call",
     "`DELETE … WHERE id = $1` · `UPDATE … SET` the five columns `= NULL` · `shred.erase('customer:' || id)`",
     [("plain", 5)]),
    ("protect", "protect the table (fresh copy, new subjects)", "row",
     "`ALTER TABLE` the four columns `TYPE bytea USING convert_to(…)`, `ADD COLUMN email_bidx bytea` + "
     "`CREATE INDEX` · `ADD COLUMN email_hmac` + `UPDATE … hmac()` + `CREATE INDEX` + `ALTER … TYPE bytea "
     "USING encrypt(…)` · `shred.protect(…)`",
     [("plain", 3)]),
]
VARIANTS = (("plain", "plain"), ("hand", "pgcrypto by hand"), ("shred", "pg_shred"))
# A plan that scans the blind index: an index scan (or bitmap index scan) on an index of email_bidx.
BIDX_SCAN = re.compile(r"(Index Scan|Index Only Scan) using \S*bidx\S*|Bitmap Index Scan on \S*bidx\S*")


def read_meta(path):
    meta = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.rstrip("\n").partition("=")
            if sep:
                meta[key] = value
    return meta


def read_checks(path):
    """(name, ok, detail) rows of bench.checks; [] when there is no file."""
    checks = []
    if not path:
        return checks
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                name, ok, detail = (line.rstrip("\n").split("\t") + ["", ""])[:3]
                checks.append((name, ok == "t", "" if detail == r"\N" else detail))
    except OSError:
        checks.append(("checks", False, f"the file of the checks ({path}) is missing"))
    return checks


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, TypeError):
        return ""


def read_results(path):
    runs = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            name, rep, nrows, ms, got = line.rstrip("\n").split("\t")
            runs.setdefault(name, []).append(
                {"rep": int(rep), "rows": int(nrows), "ms": float(ms), "got": None if got == r"\N" else int(got)})
    return runs


def parse_pgbench(path):
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        text = ""

    def num(pattern, default=None):
        m = re.search(pattern, text, re.M)
        return float(m.group(1)) if m else default

    return {
        "txns": num(r"^number of transactions actually processed: (\d+)"),
        "failed": num(r"^number of failed transactions: (\d+)", 0.0),
        "retried": num(r"^number of transactions retried: (\d+)", 0.0),
        "retries": num(r"^total number of retries: (\d+)", 0.0),
        "latency_ms": num(r"^latency average = ([\d.]+) ms"),
        "tps": num(r"^tps = ([\d.]+) \(without initial connection time\)"),
        "scripts": [(m.group(1), float(m.group(2)))
                    for m in re.finditer(r"^SQL script \d+: \S*/(\w+)\.sql\n(?:.*\n)*?.*? tps = ([\d.]+)", text, re.M)],
    }


def fmt_int(x):
    return f"{x:,.0f}"


def fmt_us(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(x):
    return fmt_us(x) + "×"


def summarize(runs, problems):
    """Median and spread of each measurement; a statement whose count differs from its rows is a problem."""
    stats = {}
    for name, rs in runs.items():
        ms = [r["ms"] for r in rs]
        rows = rs[0]["rows"]
        med = statistics.median(ms)
        stats[name] = {
            "rows": rows, "runs": len(ms), "ms": med,
            "spread": (max(ms) - min(ms)) / med * 100 if med > 0 else 0.0,
            "us": med * 1000 / rows, "per_s": rows / (med / 1000) if med > 0 else float("inf"),
        }
        for r in rs:
            if r["got"] != r["rows"]:
                problems.append(f"`{name}` run {r['rep']}: the statement counted {r['got']} of {r['rows']} rows")
    return stats


def target_line(out, desc, ok, detail):
    mark = "met" if ok else "**NOT met**"
    out(f"- {desc}: {detail} — {mark}")


def core_report(meta, stats, pgb, out, problems):
    """The seal / open / keys / erasure table, memory, pgbench and their targets."""
    def speed(name, base):
        """Throughput of `name` relative to `base` (> 1: faster than the baseline)."""
        return stats[base]["us"] / stats[name]["us"]

    def target(desc, ok, detail):
        target_line(out, desc, ok, detail)

    out("| operation | rows | median ms | spread | rows/s | µs/row | throughput vs baseline (> 1× = faster) |")
    out("|---|--:|--:|--:|--:|--:|---|")
    for name, label, bases in ROWS:
        if name not in stats:
            continue
        s = stats[name]
        ratio = " · ".join(f"{fmt_ratio(speed(name, b))} {short}" for b, short in bases if b in stats) or ""
        out(f"| {label} | {fmt_int(s['rows'])} | {s['ms']:,.1f} | {s['spread']:.0f}% | {fmt_int(s['per_s'])} "
            f"| {fmt_us(s['us'])} | {ratio} |")
    if pgb["tps"] is not None:
        scripts = ", ".join(f"{n} {t:,.0f}/s" for n, t in pgb["scripts"])
        out(f"| **pgbench mix** 80% open / 15% seal / 5% erase+reseal, {meta['pgbench_clients']} clients, "
            f"{meta['pgbench_seconds']} s | {fmt_int(pgb['txns'] or 0)} txns | | | {fmt_int(pgb['tps'])} tps "
            f"| {fmt_us((pgb['latency_ms'] or 0) * 1000)} µs/txn | {scripts} |")
    else:
        out(f"| **pgbench mix** | no result (pgbench exit status {meta.get('pgbench_rc')}) | | | | | |")
    out("")

    # Memory.
    kib = lambda k: int(meta.get(k) or 0)  # noqa: E731
    start, hwm = kib("mem_start_rss_kib"), kib("mem_hwm_kib")
    a0, a1 = kib("mem_start_anon_kib"), kib("mem_peak_anon_kib")
    growth = (hwm - start) / 1024
    out(f"Backend memory during `shred.open` of all {int(meta['rows']):,} rows (new connection; the backend "
        f"scanned the table once before, so the shared buffers it reads are already in its RSS): "
        f"start RSS {start / 1024:.1f} MiB, peak RSS (VmHWM) {hwm / 1024:.1f} MiB (+{growth:.1f} MiB); "
        f"private memory (RssAnon) {a0 / 1024:.1f} → peak {a1 / 1024:.1f} MiB "
        f"({meta.get('mem_samples', '?')} samples every 0.2 s).")
    out("")

    # Correctness.
    wrong, final_wrong = int(meta.get("wrong") or 0), int(meta.get("final_wrong") or 0)
    failed = int(pgb["failed"] or 0)
    aborted = int(meta.get("pgbench_aborted") or 0)
    if pgb["tps"] is None or meta.get("pgbench_rc") not in ("0", None):
        problems.append(f"pgbench failed (exit status {meta.get('pgbench_rc')}, {aborted} aborted clients)")
    if wrong:
        problems.append(f"{wrong} values opened wrong during the pgbench run (table bench.wrong)")
    if final_wrong:
        problems.append(f"{final_wrong} rows of bench.mix do not open to their e-mail after the pgbench run")
    if failed:
        problems.append(f"{failed} pgbench transactions failed")
    if meta.get("mem_opened") != meta.get("rows"):
        problems.append(f"the memory run opened {meta.get('mem_opened')} of {meta.get('rows')} rows")
    out(f"pgbench: {pgb['retried'] or 0:.0f} transactions retried ({pgb['retries'] or 0:.0f} retries of "
        f"serialization/deadlock errors), {failed} failed; wrong results: {wrong} during the run "
        f"(opens that did not return the stored e-mail although the subject was not erased), "
        f"{final_wrong} in a final check of every row.")
    out("")

    out("Targets (information):")
    if all(n in stats for n in ("seal", "encrypt", "open", "decrypt", "md5", "pgp_encrypt", "pgp_decrypt")):
        for op, base, pgp in (("seal", "encrypt", "pgp_encrypt"), ("open", "decrypt", "pgp_decrypt")):
            r = speed(op, base)
            target(f"warm {op} ≥ 2× pgcrypto {base} throughput", r >= 2, f"{fmt_ratio(r)}")
            target(f"warm {op} no slower than md5()", stats[op]["us"] <= stats["md5"]["us"],
                   f"{fmt_us(stats[op]['us'])} vs {fmt_us(stats['md5']['us'])} µs/row")
            r = speed(op, pgp)
            target(f"warm {op} ≥ 200× {pgp.replace('pgp_', 'pgp_sym_')}", r >= 200, f"{fmt_ratio(r)}")
    if "seal_purpose" in stats and "seal" in stats:
        t = stats["seal_purpose"]["us"] / stats["seal"]["us"]
        target("warm seal for a purpose ≤ 1.2× the time of seal under the default DEK", t <= 1.2, f"{t:.2f}×")
    if "create_seal" in stats and "insert" in stats:
        t = stats["create_seal"]["us"] / stats["insert"]["us"]
        target(f"create_keys + first seal of {int(meta['new_subjects']):,} new subjects ≤ 2× the time of the plain INSERT",
               t <= 2, f"{t:.2f}× the time")
    if "first_seal" in stats and "insert" in stats:
        t = stats["first_seal"]["us"] / stats["insert"]["us"]
        target(f"single-subject first seal of {int(meta['new_subjects']):,} new subjects ≤ 4× the time of the plain INSERT",
               t <= 4, f"{t:.2f}× the time")
    for op, label in (("erase", "erase"), ("erase_array", "erase(text[])")):
        if op not in stats:
            continue
        for base, desc in (("delete", "the one-statement DELETE"), ("delete_loop", "the row-by-row DELETE loop")):
            if base in stats and (op == "erase" or base == "delete"):
                t = stats[op]["us"] / stats[base]["us"]
                target(f"{label} of {int(meta['erase_subjects']):,} subjects ≤ 2× the time of {desc}",
                       t <= 2, f"{t:.2f}× the time")
    if "retention" in stats and "delete" in stats:
        t = stats["retention"]["us"] / stats["delete"]["us"]
        target(f"a retention batch of {int(meta['erase_subjects']):,} due purpose DEKs ≤ 3× the time of the one-statement DELETE",
               t <= 3, f"{t:.2f}× the time")
    target("flat memory during the full open (peak RSS − start RSS ≤ 16 MiB)", growth <= 16, f"+{growth:.1f} MiB")
    out("")


def protect_report(meta, stats, out):
    """The protected-table section: plain / pgcrypto by hand / pg_shred side by side, as time ratios."""
    n, batch, calls = int(meta["protect_rows"]), int(meta["protect_batch"]), int(meta["protect_calls"])
    out(f"## Protected table: {n:,} customers, one data subject each")
    out("")
    out(f"`customer (id int primary key, name text, email text, phone text, city text)`, subject "
        f"`'customer:' || id`, in a database of its own, three ways: **plain** (btree on email); **pgcrypto by "
        f"hand** (the four columns `encrypt(convert_to(v, 'UTF8'), key32, 'aes')`, `email_hmac = "
        f"hmac(lower(trim(email)), key2, 'sha256')` with a btree, read with `convert_from(decrypt(…))`); "
        f"**pg_shred** (`shred.protect('bench_customer', 'id', ARRAY['name','email','phone','city'], "
        f"searchable => ARRAY['email'], subject_prefix => 'customer:', normalization => 'email')`, used through "
        f"its view `bench_customer_plain`). INSERT / UPDATE / DELETE {batch:,} rows a run; lookups, exports and "
        f"erasures {calls:,} calls a run; SELECT and protect {n:,} rows. Sizes after loading: "
        f"{meta.get('protect_sizes', '?')}; `shred.key_cache_size` = {meta.get('key_cache_size', '?')}. "
        f"Median of {meta.get('reps', '?')} runs; time ratios (pg_shred's time ÷ the other's, < 1× = faster).")
    out("")
    out("| operation | per run | plain µs | by hand µs | pg_shred µs | ÷ plain | ÷ by hand | target (information) |")
    out("|---|--:|--:|--:|--:|--:|--:|---|")
    missing = []
    for op, label, unit, _, targets in PROTECT_OPS:
        names = {v: f"p_{op}_{v}" for v, _ in VARIANTS}
        if not any(x in stats for x in names.values()):
            missing.append(op)
            continue

        per = next((stats[x]["rows"] for x in names.values() if x in stats), 0)

        def cell(v):
            st = stats.get(names[v])
            if not st:
                return "–"
            fewer = f", {fmt_int(st['rows'])} {unit}s" if st["rows"] != per else ""
            return f"{fmt_us(st['us'])} ({st['spread']:.0f}%{fewer})"

        def ratio(v):
            a, b = stats.get(names["shred"]), stats.get(names[v])
            return a["us"] / b["us"] if a and b and b["us"] > 0 else None

        goals = []
        for v, limit in targets:
            r = ratio(v)
            what = "plain" if v == "plain" else "by hand"
            if r is None:
                goals.append(f"≤ {limit:g}× {what}: no result")
            else:
                goals.append(f"≤ {limit:g}× {what}: " + ("met" if r <= limit else "**NOT met**"))
        rp, rh = ratio("plain"), ratio("hand")
        out(f"| {label} | {fmt_int(per)} {unit}s | {cell('plain')} | {cell('hand')} | **{cell('shred')}** "
            f"| {fmt_ratio(rp) if rp is not None else '–'} | {fmt_ratio(rh) if rh is not None else '–'} "
            f"| {' · '.join(goals)} |")
    out("")
    out("µs per row or per call (spread of the runs). What each variant runs (plain · by hand · pg_shred):")
    for op, label, unit, what, _ in PROTECT_OPS:
        if op not in missing:
            out(f"- {label}: {what}")
    out("")
    if missing:
        out(f"**WARNING**: no result for {', '.join(missing)}.")
        out("")
    if meta.get("protect_lookup") != "blind_match":
        out("**WARNING**: this build has no `shred.blind_match(text, text, text)`: the pg_shred lookup ran "
            "`WHERE email_bidx = shred.blind_index($1, 'bench_customer.email', 'email')` instead of the "
            "documented `email_bidx = ANY (shred.blind_match(…))`.")
        out("")
    plan = read_text(meta.get("protect_explain_file")).strip()
    scans = [bool(BIDX_SCAN.search(part)) for part in re.split(r"^-- ", plan, flags=re.M) if part.strip()]
    if not plan:
        out("**WARNING**: no plan of the pg_shred lookup was recorded.")
    elif not scans or not all(scans):
        out("**WARNING**: the pg_shred lookup does not use an index scan on the blind-index column "
            "(every lookup may read the whole table); its plan:")
    else:
        out("The pg_shred lookup scans the blind index (plan of one lookup):")
    if re.search(r"Seq Scan on bench_customer\b", plan):
        out("")
        out(f"**WARNING**: the lookup's plan also reads bench_customer sequentially: a scan of the view's side "
            f"computes its columns, so every lookup may open all {n:,} rows (a plan that joins by the primary key "
            f"opens one).")
    if plan:
        out("")
        out("```")
        out(plan)
        out("```")
    out("")


# DEKs the backend cache keeps expanded (src/keys/cache.rs, HOT).
HOT_TIER = 16_384

# Real-scale section: name -> (label, [(baseline name, short label)]).
SCALE_ROWS = [
    ("s_floor", "floor: `count(length(email))`", []),
    ("s_decrypt", "pgcrypto `decrypt`, every row", []),
    ("s_encrypt", "pgcrypto `encrypt`, every row", []),
    ("s_open", "**`shred.open`, every row a different subject (default cache)**", [("s_decrypt", "decrypt")]),
    ("s_seal", "**`shred.seal`, every row a different existing subject (default cache)**", [("s_encrypt", "encrypt")]),
    ("s_decrypt_subset", "pgcrypto `decrypt`, the subset", []),
    ("s_encrypt_subset", "pgcrypto `encrypt`, the subset", []),
    ("s_open_subset", "**`shred.open`, the subset (its DEKs cached)**", [("s_decrypt_subset", "decrypt")]),
    ("s_seal_subset", "**`shred.seal`, the subset (its DEKs cached)**", [("s_encrypt_subset", "encrypt")]),
    ("s_floor_erased", "floor: `count(pg_column_size(v))` of erased values", []),
    ("s_open_erased", "**`shred.open` of erased values (every DEK gone)**", [("s_floor_erased", "floor")]),
]


def scale_report(meta, stats, out):
    """Open and seal when subjects outnumber the DEK cache, erased values, bytes per cached DEK."""
    n, k = int(meta["scale_rows"]), int(meta["scale_subset"])
    out(f"Real scale: {n:,} rows of {n:,} distinct subjects (`bench.s`, one subject per row), the subset = "
        f"its first {k:,} rows, and {n:,} values of erased subjects; default `shred.key_cache_size` = "
        f"{int(meta['scale_key_cache_size']):,}. Time vs the baseline (< 1× = faster than it):")
    out("")
    out("| operation | rows | median ms | spread | µs/row | time vs baseline |")
    out("|---|--:|--:|--:|--:|---|")
    for name, label, bases in SCALE_ROWS:
        if name not in stats:
            continue
        st = stats[name]
        ratio = " · ".join(f"{fmt_ratio(st['us'] / stats[b]['us'])} {short}" for b, short in bases if b in stats)
        out(f"| {label} | {fmt_int(st['rows'])} | {st['ms']:,.1f} | {st['spread']:.0f}% | {fmt_us(st['us'])} | {ratio} |")
    out("")
    kib = lambda key: int(meta.get(key) or 0)  # noqa: E731
    a0, a1, a2 = kib("scale_anon0_kib"), kib("scale_anon1_kib"), kib("scale_anon2_kib")
    first = (a1 - a0) * 1024 / k if k else 0
    more = (a2 - a1) * 1024 / k if k else 0
    out(f"Backend memory (RssAnon) while caching DEKs, new connection, `shred.key_cache_size` = {4 * k:,}: "
        f"{a0 / 1024:.1f} MiB → {a1 / 1024:.1f} MiB after {k:,} subjects ({first:,.0f} bytes per DEK, the "
        f"16,384 kept expanded included) → {a2 / 1024:.1f} MiB after {2 * k:,} ({more:,.0f} bytes per further "
        f"DEK); {int(meta.get('scale_cached') or 0):,} DEKs cached at the end.")
    out("")
    cache = int(meta["scale_key_cache_size"])
    fits = n <= cache
    small_subset = k <= HOT_TIER
    if fits:
        out(f"**At this size all {n:,} subjects fit the DEK cache ({cache:,}): the every-row-a-different-subject "
            f"rows do not measure the real-scale case** (run with PG_SHRED_BENCH_SCALE_ROWS above {cache:,}).")
        out("")
    if small_subset:
        out(f"**The subset ({k:,}) is within the {HOT_TIER:,} DEKs kept expanded: the memory figures measure "
            f"expanded DEKs, not the compact ones** (run with PG_SHRED_BENCH_SCALE_SUBSET above {HOT_TIER:,}).")
        out("")
    out("Targets (information):")

    def ratio_target(desc, name, base, limit):
        if name in stats and base in stats:
            t = stats[name]["us"] / stats[base]["us"]
            target_line(out, desc, t <= limit, f"{t:.2f}× the time")
    if not fits:
        ratio_target(f"open over {n:,} distinct subjects ≤ 1× pgcrypto decrypt", "s_open", "s_decrypt", 1)
        ratio_target(f"seal over {n:,} distinct existing subjects ≤ 1× pgcrypto encrypt", "s_seal", "s_encrypt", 1)
    ratio_target(f"open over {k:,} cached subjects ≤ 1× pgcrypto decrypt", "s_open_subset", "s_decrypt_subset", 1)
    ratio_target(f"scan of {n:,} erased values ≤ 2× its floor", "s_open_erased", "s_floor_erased", 2)
    if not small_subset:
        target_line(out, "≤ 256 bytes of backend memory per cached DEK (beyond the expanded ones)", 0 < more <= 256,
                    f"{more:,.0f} bytes")
    out("")


def main():
    meta_path, results_path, pgbench_path, out_path = sys.argv[1:5]
    meta = read_meta(meta_path)
    runs = read_results(results_path)
    pgb = parse_pgbench(pgbench_path)
    problems = []
    stats = summarize(runs, problems)
    checks = read_checks(meta.get("checks_file"))
    for name, ok, detail in checks:
        if not ok:
            problems.append(f"check `{name}`: {detail}")
    core, protect, scale = "rows" in meta, "protect_rows" in meta, "scale_rows" in meta

    lines = []
    out = lines.append
    out("# pg_shred benchmark")
    out("")
    out(f"- machine: {meta.get('cpu', '?')}, {meta.get('cpus', '?')} CPUs ({meta.get('cores', '?')} cores), "
        f"{meta.get('ram', '?')} RAM")
    out(f"- PostgreSQL: {meta.get('pg_version', '?')}")
    out(f"- pg_shred {meta.get('pg_shred_version', '?')}, git commit {meta.get('commit', '?')}; build: {meta.get('build', '?')}")
    out(f"- date: {meta.get('date', '?')}; settings: {meta.get('settings', '?')}")
    if core:
        out(f"- data: {int(meta['rows']):,} rows of ~30-byte e-mail addresses, {int(meta['subjects']):,} subjects "
            f"(`'customer:' || (id % {meta['subjects']})`); pgp_sym_* on {int(meta['pgp_rows']):,} rows; "
            f"first seal of {int(meta['new_subjects']):,} new subjects; erasure of {int(meta['erase_subjects']):,} subjects")
    if meta.get("only"):
        out(f"- sections: only PG_SHRED_BENCH_ONLY={meta['only']} ran")
    out(f"- method: server-side time of each statement (clock_timestamp() around EXECUTE in PL/pgSQL, "
        f"aggregated in SQL, no rows sent to the client), run serially, median of {meta.get('reps', '?')} runs"
        + ("; warm = same connection after a warm-up pass; cold = new connection, first statement "
           "(backend caches cold, shared buffers warm)" if core else ""))
    out("")
    if core:
        core_report(meta, stats, pgb, out, problems)
    if scale:
        scale_report(meta, stats, out)
    if protect:
        protect_report(meta, stats, out)
    out("Correctness:")
    target_line(out, "0 wrong results", not problems,
                f"{len(problems)} problem(s); {sum(ok for _, ok, _ in checks)} of {len(checks)} checks right")
    for p in problems:
        out(f"  - {p}")

    report = "\n".join(lines) + "\n"
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(report)
    sys.stdout.write(report)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
