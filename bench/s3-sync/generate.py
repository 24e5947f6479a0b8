"""Writes N Binance-format kline archives (~100 KB each) with their .CHECKSUM
files into a directory laid out like the archive bucket.

usage: generate.py OUT_DIR COUNT [ROWS]   (ROWS per file, default 1440: a full day)
       PER_SYMBOL=N: days per symbol (default 500), so COUNT / N series
"""
import datetime
import hashlib
import io
import os
import random
import sys
import zipfile

out, count = sys.argv[1], int(sys.argv[2])
rows = int(sys.argv[3]) if len(sys.argv) > 3 else 1440
per_symbol = int(os.environ.get("PER_SYMBOL", "500"))
rng = random.Random(42)
base = 1672531200000  # 2023-01-01 in ms, the first file's day
for i in range(count):
    symbol = f"SYM{i // per_symbol:03d}USDT"
    day = i % per_symbol
    date = (datetime.date(2023, 1, 1) + datetime.timedelta(days=day)).isoformat()
    name = f"{symbol}-1m-{date}.zip"
    key = f"data/spot/daily/klines/{symbol}/1m/{name}"
    # Random prices compress like real ones: ~1440 rows make ~100 KB zipped.
    lines = []
    for m in range(rows):
        t = base + day * 86_400_000 + m * 60_000
        p = 100 + rng.random() * 10
        lines.append(
            f"{t},{p:.8f},{p + rng.random():.8f},{p - rng.random():.8f},{p + rng.random() - 0.5:.8f},"
            f"{rng.random() * 1000:.8f},{t + 59_999},{rng.random() * 100000:.8f},{rng.randint(1, 5000)},"
            f"{rng.random() * 500:.8f},{rng.random() * 50000:.8f},0"
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name.replace(".zip", ".csv"), "\n".join(lines))
    data = buffer.getvalue()
    path = os.path.join(out, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    with open(path + ".CHECKSUM", "w") as f:
        f.write(f"{hashlib.sha256(data).hexdigest()}  {name}")
