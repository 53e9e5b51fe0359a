"""The EC2 driver: Amazon EC2, S3 and classic ELB on boto3.

Modules: :mod:`.driver` (EC2Driver, its declarations), :mod:`.session` (provider, options,
credentials), :mod:`.clients` (the bounded cache of boto3 clients), :mod:`.errors` (botocore
exceptions to SDK errors, in one place), :mod:`.compute` (EC2), :mod:`.storage` (S3),
:mod:`.elb` (classic ELB), :mod:`.names` (the names a client chooses, held to AWS's rules before
any request).
"""

from .driver import EC2Driver

__all__ = ["EC2Driver"]
