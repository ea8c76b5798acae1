"""ServiceAccounts' server side (issue 12 item 3, decision 35): tokens.py signs
and verifies their JWTs, authenticator.py turns a bearer token into an
identity, admission.py gives pods their account and token volume,
tokenrequest.py serves `serviceaccounts/NAME/token`."""
