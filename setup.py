"""Only for the C accumulation kernel; all metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "datamodules._accel",
            sources=["datamodules/_accel.c"],
            extra_compile_args=["-O3", "-fno-wrapv", "-funroll-loops"],
            optional=True,  # the numpy reference path is used if no compiler is present
        )
    ]
)
