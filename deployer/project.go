package deployer

import "github.com/berth-dev/berth/deployer/compose"

// ProjectSpec says where a compose project lives, the way the compose CLI is told (see compose.Spec).
type ProjectSpec = compose.Spec

// Compose's labels under the short names the deployer's files have always used.
const (
	labelProject    = compose.LabelProject
	labelService    = compose.LabelService
	labelVersion    = compose.LabelVersion
	labelWorkingDir = compose.LabelWorkingDir
	labelConfigs    = compose.LabelConfigs
	labelEnvFiles   = compose.LabelEnvFiles
	labelOneoff     = compose.LabelOneoff
	labelImage      = compose.LabelImage
	labelConfigHash = compose.LabelConfigHash
	labelNumber     = compose.LabelNumber
	labelDependsOn  = compose.LabelDependsOn
	labelReplace    = compose.LabelReplace
	labelNetwork    = compose.LabelNetwork
	labelVolume     = compose.LabelVolume
)
