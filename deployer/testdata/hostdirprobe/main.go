// Command hostdirprobe runs berth's host-directory detection from inside a container and
// prints the result, for TestDetectHostDirsInContainer.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/compose"
)

func main() {
	c, err := client.New(client.FromEnv)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	specs, err := deployer.DetectHostDirs(context.Background(), c, []compose.Spec{{Dir: os.Args[1]}})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("hostdir:", specs[0].HostDir)
}
