"""The project's local stack, for `make demo`, `make invoke`, the SAM targets, the tests and the bench.

Modules, and what each may import besides the standard library:

- `template`: template.yaml's functions, routes and parts (yaml; the handler modules, for their parts)
- `invoker`: handlers imported in isolation and invoked in process (`template`; the layer)
- `gateway`: API Gateway in miniature and the website server (`invoker`, `site`, `servers`)
- `site`: static files with CloudFront's headers and CSP (`template`)
- `servers`: free ports, threaded HTTP servers, stopping child processes
- `s3`: moto on loopback, copying a model store into it (moto, the layer)
- `docker`: the daemon and the emulation images built without a registry (`servers`, `template`)
- `sam`: `sam build`, `sam local invoke` / `start-api` against moto in a container (`docker`, `s3`)
- `demo`: `make demo`, in process or with SAM (`gateway`, `s3`, `sam`; training)

Nothing here is shipped to AWS; `scripts/` holds the command lines that call it.
"""
