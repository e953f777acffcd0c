module github.com/portmux/portmux

go 1.26.0
