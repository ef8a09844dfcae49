def test_root_key_reads_empty_range(client, org):
    response = client.post(
        "/api/v1/usage-analytics",
        headers=org.headers(),
        json={"start_date": "2024-01-01", "end_date": "2024-01-31"},
    )
    assert response.status_code == 200, response.json
    assert response.json == {
        "api_key": None,
        "total": {"stt_duration": 0, "tokens": 0, "usage": 0},
        "deltas": {},
    }
