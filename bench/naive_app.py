"""The naive ingest baseline for bench/ingest_throughput.py: a minimal Falcon app that decodes JSON with the
standard library and XADDs each event on its own, without pipelining, validation or enrichment."""

import json
import os

import falcon
import redis

client = redis.Redis.from_url(os.environ["REDIS_URL"])


class NaiveIngest:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json.loads(req.bounded_stream.read())
        events = body["batch"] if isinstance(body, dict) else body
        for event in events:
            client.xadd("naive:events", {"e": json.dumps(event)})
        resp.media = {"accepted": len(events)}


app = falcon.App()
app.add_route("/v1/events", NaiveIngest())
