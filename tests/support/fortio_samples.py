"""fortio results for tests, shaped as `fortio load -json` writes them."""

from __future__ import annotations


def fortio_result(**changes) -> dict:
    """A fortio HTTP result as `fortio load -json` writes it (1000 qps for 10 s, 4 connections)."""
    result = {
        "RunType": "HTTP",
        "Labels": "mesh",
        "StartTime": "2026-11-30T08:00:00.000000000Z",
        "RequestedQPS": "1000",
        "RequestedDuration": "10s",
        "ActualQPS": 990.5,
        "ActualDuration": 10095911000,
        "NumThreads": 4,
        "Version": "1.69.0",
        "DurationHistogram": {
            "Count": 10000,
            "Min": 0.0004,
            "Max": 0.25,
            "Sum": 21.4,
            "Avg": 0.00214,
            "StdDev": 0.004,
            "Data": [
                {"Start": 0.0004, "End": 0.001, "Percent": 20, "Count": 2000},
                {"Start": 0.001, "End": 0.002, "Percent": 60, "Count": 4000},
                {"Start": 0.002, "End": 0.003, "Percent": 90, "Count": 3000},
                {"Start": 0.003, "End": 0.004, "Percent": 98, "Count": 800},
                {"Start": 0.004, "End": 0.005, "Percent": 99, "Count": 100},
                {"Start": 0.005, "End": 0.01, "Percent": 99.9, "Count": 90},
                {"Start": 0.01, "End": 0.25, "Percent": 100, "Count": 10},
            ],
            "Percentiles": [
                {"Percentile": 50, "Value": 0.00175},
                {"Percentile": 75, "Value": 0.0025},
                {"Percentile": 90, "Value": 0.003},
                {"Percentile": 99, "Value": 0.005},
                {"Percentile": 99.9, "Value": 0.01},
            ],
        },
        "ErrorsDurationHistogram": {"Count": 0, "Min": 0, "Max": 0, "Sum": 0, "Avg": 0, "StdDev": 0,
                                    "Data": None},
        "Exactly": 10000,
        "RetCodes": {"200": 10000},
        "Sizes": {"Count": 10000, "Min": 1024, "Max": 1024},
        "HeaderSizes": {"Count": 10000, "Min": 120, "Max": 120},
        "URL": "http://productpage.shop:9080/",
    }
    result.update(changes)
    return result


def baseline_result() -> dict:
    """The same load without sidecars: only the percentiles matter here."""
    base = fortio_result(ActualQPS=1000.0)
    base["DurationHistogram"]["Percentiles"] = [
        {"Percentile": 50, "Value": 0.0011},
        {"Percentile": 90, "Value": 0.0016},
        {"Percentile": 99, "Value": 0.0031},
    ]
    return base
