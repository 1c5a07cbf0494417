"""EHR stage: the canonical input tables (CONTRACTS.md §1), their readers and their validator.

>>> from clinical_mborl.ehr import read_ehr, check_ehr
>>> report = check_ehr(read_ehr("path/to/ehr"))  # doctest: +SKIP
>>> scan_validate_folder("path/to/big_ehr").ok  # the same rules on lazy scans  # doctest: +SKIP
"""

from clinical_mborl.ehr.readers import EHRTables, TableIssues, locate_tables, read_ehr, scan_ehr
from clinical_mborl.ehr.rows import MeasurementRow, StayRow, TreatmentRow, ehr_json_schemas
from clinical_mborl.ehr.scan_validate import scan_validate_folder
from clinical_mborl.ehr.tables import MEASUREMENTS, STAYS, TABLES, TREATMENTS, TableContract
from clinical_mborl.ehr.validate import ValidationReport, check_ehr, validate_ehr, validate_folder

__all__ = [
    "MEASUREMENTS",
    "STAYS",
    "TABLES",
    "TREATMENTS",
    "EHRTables",
    "MeasurementRow",
    "StayRow",
    "TableContract",
    "TableIssues",
    "TreatmentRow",
    "ValidationReport",
    "check_ehr",
    "ehr_json_schemas",
    "locate_tables",
    "read_ehr",
    "scan_ehr",
    "scan_validate_folder",
    "validate_ehr",
    "validate_folder",
]
