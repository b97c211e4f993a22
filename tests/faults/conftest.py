"""The fault suite: crashes, corrupt journals, hostile input, outages, bursts,
bad configuration and disk trouble. The fast form runs with every test run;
``pytest -m long tests/faults`` runs the long form (more kills, more fuzz
cases, longer outages). ``docs/reliability.md`` maps each guarantee to its test.
"""
