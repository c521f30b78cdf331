package compose

import (
	"fmt"

	"github.com/compose-spec/compose-go/v2/types"
)

// The labels compose writes on what it creates; docker compose finds its containers by them.
const (
	labelPrefix = "com.docker.compose."
	// LabelProject names the project a container, network or volume belongs to.
	LabelProject = labelPrefix + "project"
	// LabelService names the service a container runs.
	LabelService = labelPrefix + "service"
	// LabelVersion is the compose release that made the resource, without a leading "v".
	LabelVersion = labelPrefix + "version"
	// LabelWorkingDir is the project directory, as the host sees it.
	LabelWorkingDir = labelPrefix + "project.working_dir"
	// LabelConfigs lists the project's compose files, comma-separated.
	LabelConfigs = labelPrefix + "project.config_files"
	// LabelEnvFiles lists the --env-file files the project was loaded with.
	LabelEnvFiles = labelPrefix + "project.environment_file"
	// LabelOneoff is "True" on `docker compose run` containers, "False" on service replicas.
	LabelOneoff = labelPrefix + "oneoff"
	// LabelImage is the id of the image the container was created from.
	LabelImage = labelPrefix + "image"
	// LabelConfigHash is the config hash compose compares to decide on a recreate.
	LabelConfigHash = labelPrefix + "config-hash"
	// LabelNumber is the replica number of the container within its service.
	LabelNumber = labelPrefix + "container-number"
	// LabelDependsOn lists the service's dependencies as name:condition:restart.
	LabelDependsOn = labelPrefix + "depends_on"
	// LabelReplace names the replica this container replaced (service-n, or its container_name).
	LabelReplace = labelPrefix + "replace"
	// LabelNetwork is the project's key of a network compose created.
	LabelNetwork = labelPrefix + "network"
	// LabelVolume is the project's key of a volume compose created.
	LabelVolume = labelPrefix + "volume"
)

// Replicas is how many containers compose keeps for the service.
func Replicas(s types.ServiceConfig) int {
	n := s.GetScale()
	if n < 0 {
		return 1
	}
	return n
}

// ContainerName is the name compose gives replica n of the service.
func ContainerName(project string, s types.ServiceConfig, n int) string {
	if s.ContainerName != "" {
		return s.ContainerName
	}
	return fmt.Sprintf("%s-%s-%d", project, s.Name, n)
}
