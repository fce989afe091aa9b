# A Shiny page for swarmhub's tests: the server side answers each change of
# the text input over Shiny's WebSocket, so the greeting proves the socket
# works through the hub's proxy.
library(shiny)

ui <- fluidPage(
	titlePanel("swarmhub Shiny test"),
	textInput("who", "Your name", value = ""),
	tags$p(id = "greeting-line", textOutput("greeting", inline = TRUE)),
	tags$p("Characters typed: ", textOutput("count", inline = TRUE))
)

server <- function(input, output, session) {
	output$greeting <- renderText({
		if (nchar(input$who) == 0) "Nobody yet" else
			paste0("Hello, ", input$who, "!")
	})
	output$count <- renderText(nchar(input$who))
}

shinyApp(ui, server)
