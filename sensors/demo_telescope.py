"""Sensor that drives the demo feeder at an accelerated, configurable cadence."""


from dagster import DefaultSensorStatus, RunRequest, SensorDefinition, SensorEvaluationContext, sensor

from contimg.settings import Settings


def build_simulated_telescope_sensor(settings: Settings) -> SensorDefinition:
    """The demo feeder's sensor, from the validated settings (CONTIMG_DEMO,
    CONTIMG_DEMO_CADENCE_S, CONTIMG_DEMO_MAX_GROUPS, CONTIMG_DEMO_SIZE)."""
    max_groups = int(settings["CONTIMG_DEMO_MAX_GROUPS"])  # type: ignore[arg-type]
    size = str(settings["CONTIMG_DEMO_SIZE"])

    # The job is named, not passed: a sensor holding a job whose resources come from the
    # Definitions is rebuilt by Dagster 1.13 when the resources are bound, and that rebuild
    # passes the beta `owners` parameter, printing a BetaWarning every time the code
    # location loads (each tick, each run). Naming the job binds it without the rebuild.
    @sensor(
        name="simulated_telescope_sensor",
        job_name="simulated_telescope_job",
        minimum_interval_seconds=int(settings["CONTIMG_DEMO_CADENCE_S"]),  # type: ignore[arg-type]
        default_status=(DefaultSensorStatus.RUNNING if settings["CONTIMG_DEMO"]
                        else DefaultSensorStatus.STOPPED),
        description="Demo only: writes one simulated group into incoming/ per tick "
                    "(CONTIMG_DEMO_CADENCE_S, default 60 s; stops after CONTIMG_DEMO_MAX_GROUPS).",
    )
    def simulated_telescope_sensor(context: SensorEvaluationContext) -> RunRequest | None:
        """Request the next demo group; the cursor is the index of the next group."""
        index = int(context.cursor or 0)
        if index >= max_groups:
            return None
        context.update_cursor(str(index + 1))
        return RunRequest(
            run_key=f"demo-group-{index}",
            run_config={"ops": {"write_simulated_group": {"config": {"group_index": index,
                                                                     "size": size}}}},
        )

    return simulated_telescope_sensor
