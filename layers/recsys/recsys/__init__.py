"""Serving a LightFM movie recommender from AWS Lambda: the model artifact and everything around it.

Modules: `artifact` (the model), `scoring` (numpy kernels), `store` (safe loading and refresh),
`config` (settings), `errors` (the error tree), `uri` (store layout), `service` (what each route
answers) and `api` (the HTTP glue shared by the handlers).
"""
