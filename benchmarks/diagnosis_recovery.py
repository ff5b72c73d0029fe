"""Recovery rates per family of mistakes (docs/diagnosis.md): seeded draws applied by DALI operators to an otherwise
exact stage; a draw is recovered when its family's cause alone is named with the parameter within the bound.

Run: .venv/bin/python benchmarks/diagnosis_recovery.py              (the table, and each draw's outcome)
     .venv/bin/python benchmarks/diagnosis_recovery.py --markdown   (docs/diagnosis.md, regenerated: redirect it there)
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the trials live with the tests

from tests.recovery import PER_FAMILY, table, trials  # noqa: E402

MARK = "\n## Recovery by family\n"

if __name__ == "__main__":
    results = trials(PER_FAMILY)
    if "--markdown" not in sys.argv[1:]:
        for t in results:
            print(f"{t.family:<12} {t.value!s:<22} {t.photo:<14} {','.join(t.kinds) or '-':<24} "
                  f"{'recovered' if t.recovered else 'NOT recovered'}")
        print(table(results))
    else:
        page = (ROOT / "docs" / "diagnosis.md").read_text()
        head, _, rest = page.partition(MARK)
        tail = rest.partition("\n## ")[2]
        intro = rest.split("\n| family |")[0]
        print(f"{head}{MARK}{intro}\n{table(results)}\n" + (f"\n## {tail}" if tail else ""), end="")
