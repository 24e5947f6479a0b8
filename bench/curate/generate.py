"""Writes the curate benchmark's archive: ROWS rows (at most a month's, 2,678,400)
of Binance spot 1s klines (µs timestamps, a random walk of prices) from
2025-01-01, a monthly file, as WORK/BTCUSDT-1s-2025-01.csv and,
under WORK/src/, the zip at its data.binance.vision key with its .CHECKSUM.
STORED=1 stores the CSV in the zip uncompressed.

usage: python3 bench/curate/generate.py WORK ROWS
"""
import hashlib, os, random, sys, zipfile
work, rows = sys.argv[1], int(sys.argv[2])
# The agent checks every row against its archive's period: no more rows
# than January has seconds.
assert rows <= 31 * 86400, "at most a month of 1s rows"
rng = random.Random(7)
name = "BTCUSDT-1s-2025-01"
t0 = 1735689600_000_000  # 2025-01-01, µs (spot files since 2025)
with open(f"{work}/{name}.csv", "w") as f:
    p = 93000.0
    for i in range(rows):
        p += rng.uniform(-5, 5)
        t = t0 + i * 1_000_000
        f.write(f"{t},{p:.2f},{p + 3:.2f},{p - 3:.2f},{p + 1:.2f},{rng.random():.8f},{t + 999_999},"
                f"{rng.random() * 90000:.8f},{rng.randint(1, 300)},{rng.random() / 2:.8f},{rng.random() * 45000:.8f},0\n")
key = f"data/spot/monthly/klines/BTCUSDT/1s/{name}.zip"
os.makedirs(os.path.dirname(f"{work}/src/{key}"), exist_ok=True)
method = zipfile.ZIP_STORED if os.environ.get("STORED") else zipfile.ZIP_DEFLATED
with zipfile.ZipFile(f"{work}/src/{key}", "w", method) as z:
    z.write(f"{work}/{name}.csv", f"{name}.csv")
data = open(f"{work}/src/{key}", "rb").read()
open(f"{work}/src/{key}.CHECKSUM", "w").write(f"{hashlib.sha256(data).hexdigest()}  {name}.zip")
print(f"CSV {os.path.getsize(f'{work}/{name}.csv')} bytes, zip {len(data)} bytes")
